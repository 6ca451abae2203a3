package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/authz"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/inspect"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/tier"
)

// Pipeline stages 4 and 6: inspection of what flows out of the agent (a
// call's arguments) and into it (a call's result). Both pass everything
// when the gateway has no Inspector.

// stageOutbound inspects a call's arguments once grant and policy allowed
// it: secrets and PII, exfiltration channels and hosts outside the task's
// allow-list, the task's data-volume budget, and the tier's taint flow rule
// (which asks the grant which arguments it fixes). A block denies; a redact
// forwards the masked arguments; any finding is recorded, joins the
// session's facts, and policy is asked again with it.
func stageOutbound(c *Call) *Denial {
	in := c.g.inspector
	if in == nil {
		return nil
	}
	o := inspect.Outbound{Tool: c.Tool.ID, Labels: c.Tool.Labels, Args: c.Args, Session: c.session.inspect, Flow: c.flowRule()}
	if ch := c.Decision.Checked; ch != nil {
		o.Fixed = ch.Fixed
		o.Egress = c.g.egressOf(ch.Grant)
		o.Budget = c.g.volumeFor(ch.Grant.Task)
	}
	res := in.CheckOutbound(c.Ctx, o)
	if d := c.noteFindings(res); d != nil {
		return d
	}
	if res.Blocked() {
		if !needsHuman(res) || c.g.hold == nil {
			return blockDenial(res)
		}
		// The sound flow rule asks for a human rather than deny.
		if d := c.g.hold(c, res.Rule, res.Reason); d != nil {
			return d
		}
	}
	if res.Action == tier.ActionRedact && res.RedactedArgs != nil {
		b, err := json.Marshal(res.RedactedArgs)
		if err != nil {
			return &Denial{Code: "redaction_failed", Message: "the arguments could not be redacted, so the call is not forwarded: " + err.Error()}
		}
		c.Args = b
	}
	if len(res.Findings) > 0 {
		// A finding is a fact policy may forbid on: ask again.
		c.Decision = c.g.authz.Recheck(c.Ctx, c.authzRequest(), c.Decision)
		if !c.Decision.Allow {
			return c.decisionDenial()
		}
	}
	return nil
}

// needsHuman reports whether a block is only the sound taint flow rule's,
// which an operator may lift for this one call.
func needsHuman(res inspect.Result) bool {
	if res.Rule != "taint_sound" {
		return false
	}
	for _, f := range res.Findings {
		if f.Action == tier.ActionBlock && f.Rule != "taint_sound" {
			return false
		}
	}
	return true
}

// stageInbound inspects a result before the agent sees it: injection in
// what it carries. For a tool labelled untrusted_output the session's taint
// record takes in the content, whatever the verdict, so that the flow rule
// can later match values that came from it. A block withholds the result;
// a redact removes the injected spans.
func stageInbound(c *Call) *Denial {
	in := c.g.inspector
	if in == nil || c.Result == nil {
		return nil
	}
	res := in.CheckInbound(c.Ctx, inspect.Inbound{Tool: c.Tool.ID, CallID: c.taintID(), Labels: c.Tool.Labels,
		Content: resultText(c.Result), Session: c.session.inspect})
	c.untrustedRead()
	if d := c.noteFindings(res); d != nil {
		return d
	}
	if res.Blocked() {
		return blockDenial(res)
	}
	if res.Action == tier.ActionRedact {
		c.Result.Content = []mcp.Content{&mcp.TextContent{Text: res.RedactedContent}}
		c.Result.StructuredContent = nil // it carried the same content, unredacted
	}
	return nil
}

// untrustedRead taints the session when the tool's output is untrusted:
// it has been read (by Warden, on the agent's behalf) even when it is then
// withheld, and the session's writes from now on are untrusted.
func (c *Call) untrustedRead() {
	if c.Tool.HasLabel(policy.LabelUntrustedOutput) {
		c.listTaint([]string{c.taintID()})
	}
}

// taintID is how a source of untrusted content is named: server.tool#call.
func (c *Call) taintID() string { return c.Tool.ID + "#" + c.id }

// flowRule is the stricter of the deployment's flow rule and the one of
// the agent's own tier.
func (c *Call) flowRule() tier.FlowRule {
	flow := c.g.preset.Flow
	if r := c.Caller.Record; r != nil && r.Tier.Valid() && flowRank(tier.For(r.Tier).Flow) > flowRank(flow) {
		flow = tier.For(r.Tier).Flow
	}
	return flow
}

func flowRank(f tier.FlowRule) int {
	return map[tier.FlowRule]int{tier.FlowOff: 0, tier.FlowHeuristic: 1, tier.FlowSound: 2}[f]
}

// egressOf is a task's egress allow-list: the hosts its grant names (its
// egress list and its url_host_in constraints). A task with any, or any
// task at a tier that lists egress, may point its arguments nowhere else
// (the deployment's allow_hosts are added by the inspector).
func (g *Gateway) egressOf(gr *grant.Grant) inspect.EgressPolicy {
	hosts := gr.EgressHosts()
	return inspect.EgressPolicy{Allow: hosts, DenyUnlisted: len(hosts) > 0 || g.preset.SandboxEgressList}
}

// volumeFor is the task's outbound data-volume budget.
func (g *Gateway) volumeFor(task string) *inspect.VolumeBudget {
	limit := g.inspector.VolumeBudgetBytes()
	if limit <= 0 {
		return nil
	}
	if b, ok := g.volumes.Load(task); ok {
		return b.(*inspect.VolumeBudget)
	}
	b, _ := g.volumes.LoadOrStore(task, inspect.NewVolumeBudget(limit))
	return b.(*inspect.VolumeBudget)
}

// noteFindings records a check's findings as events and in the session's
// facts. A finding that cannot be recorded denies the call.
func (c *Call) noteFindings(res inspect.Result) *Denial {
	if len(res.Findings) == 0 {
		return nil
	}
	ec := inspect.EventContext{Agent: c.Caller.ID.String(), Tool: c.Tool.ID, Session: c.session.id, Request: c.id,
		Task: c.Decision.Task, Grant: c.Decision.Grant}
	for _, e := range res.Events(ec) {
		if err := c.g.sink.Emit(context.WithoutCancel(c.Ctx), e); err != nil {
			return &Denial{Code: authz.CodeUnrecorded, Message: "an inspection finding could not be recorded, so the call is denied: " + err.Error()}
		}
	}
	c.session.mu.Lock()
	for _, f := range res.Findings {
		if k := string(f.Kind); !slices.Contains(c.session.findings, k) {
			c.session.findings = append(c.session.findings, k)
		}
	}
	c.session.mu.Unlock()
	return nil
}

// blockDenial is an inspection block as the agent sees it: the code names
// the kind of finding (secret_blocked, exfiltration_blocked,
// prompt_injection_blocked, ...), or the flow rule that decided
// (taint_heuristic, taint_sound).
func blockDenial(res inspect.Result) *Denial {
	code := "inspect_blocked"
	for _, f := range res.Findings {
		if f.Rule == res.Rule && f.Action == tier.ActionBlock {
			code = string(f.Kind) + "_blocked"
			break
		}
	}
	if strings.HasPrefix(res.Rule, "taint_") {
		code = res.Rule
	}
	return &Denial{Code: code, Message: res.Reason, Reasons: []authz.Reason{{Source: "inspect", Code: code, Message: fmt.Sprintf("%s (rule %s)", res.Reason, res.Rule)}}}
}

// resultText is a result's text as the agent's model would read it: every
// text part, and the structured content when there is no text.
func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			b.WriteString(c.Text)
			b.WriteByte('\n')
		case *mcp.EmbeddedResource:
			if c.Resource != nil {
				b.WriteString(c.Resource.Text)
				b.WriteByte('\n')
			}
		}
	}
	if b.Len() == 0 && r.StructuredContent != nil {
		if s, err := json.Marshal(r.StructuredContent); err == nil {
			b.Write(s)
		}
	}
	return b.String()
}
