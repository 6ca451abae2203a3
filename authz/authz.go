// Package authz is Warden's decision point: a call is allowed only when the
// task's grant permits it (scope, constraints, binding, revocation, budget)
// and organisation policy (Cedar) permits it too. Forbid overrides; the
// answer carries the decision, every reason, and the ids of the policies and
// the grant entry that decided, and every decision is recorded as an OCSF
// API Activity event with the Security Control profile.
//
// authz owns the order of the checks and nothing else: grants are the grant
// package's, policies the policy package's. It reserves a call's budget only
// once both have permitted it, and it fails closed: a decision that cannot be
// recorded is a denial.
package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/policy"
)

// Decider is organisation policy: *policy.Store, or a fixed *policy.Engine.
type Decider interface {
	Decide(ctx context.Context, req policy.Request) policy.Decision
}

// Grants is the grant check: *grant.Service.
type Grants interface {
	Check(ctx context.Context, c grant.Call) (*grant.Checked, error)
	Reserve(ctx context.Context, ch *grant.Checked) error
}

// Request is one call to decide.
type Request struct {
	Call grant.Call
	// Tool is the tool as policy sees it, with its risk labels; its ID must
	// be Call.Tool.
	Tool policy.Tool
	// Read, when set, makes this a read of an MCP resource or prompt
	// (policy action read on it) rather than a tool call; Call.Tool is then
	// the pseudo-tool the grant names for it (server.read_resource,
	// server.get_prompt).
	Read    policy.Target
	Session policy.Session
	Groups  []string // Cedar groups the agent is in
}

// Reason is one reason for a decision.
type Reason struct {
	Source   string `json:"source"` // "grant" or "policy"
	Code     string `json:"code"`
	Message  string `json:"message"`
	Policy   string `json:"policy,omitempty"`
	Position string `json:"position,omitempty"`
}

// Decision is the answer.
type Decision struct {
	Allow      bool     `json:"allow"`
	Code       string   `json:"code"` // "allow", or the code of the reason that denied
	Reasons    []Reason `json:"reasons"`
	Policies   []string `json:"policies,omitempty"`    // ids of the policies that decided
	GrantEntry *int     `json:"grant_entry,omitempty"` // index of the grant scope entry that permitted
	Task       string   `json:"task,omitempty"`
	Grant      string   `json:"grant,omitempty"`
	// Checked is the grant's view of an allowed call (the taint rules ask
	// it which arguments the grant fixes).
	Checked *grant.Checked `json:"-"`
}

// CodeAllow is the code of an allowed call.
const CodeAllow = "allow"

// CodeUnrecorded denies a decision that could not be recorded.
const CodeUnrecorded = "decision_unrecorded"

// Point is the decision point.
type Point struct {
	grants Grants
	policy Decider
	sink   events.Sink
}

// New returns a decision point.
func New(g Grants, p Decider, sink events.Sink) *Point {
	return &Point{grants: g, policy: p, sink: sink}
}

// Authorize decides one call: grant first (cheap, and it names the task),
// then policy, then the budget is reserved; the decision is recorded before
// it is returned.
func (p *Point) Authorize(ctx context.Context, r Request) Decision {
	preq := policy.Request{
		Agent:   agentOf(r),
		Action:  policy.Call,
		Target:  r.Tool,
		Args:    r.Call.Args,
		Session: r.Session,
	}
	if r.Read != nil {
		preq.Action, preq.Target = policy.Read, r.Read
	}
	var d Decision
	ch, err := p.grants.Check(ctx, r.Call)
	var pd policy.Decision
	switch {
	case err != nil:
		d = denyGrant(err)
		pd = policy.Decision{Code: policy.Code(d.Code), Reasons: []policy.Reason{{Message: err.Error()}}}
	case r.Read == nil && r.Tool.ID() != r.Call.Tool:
		d = Decision{Code: string(grant.CodeInternal), Reasons: []Reason{{Source: "grant", Code: string(grant.CodeInternal),
			Message: fmt.Sprintf("the tool decided by policy (%s) is not the tool checked against the grant (%s)", r.Tool.ID(), r.Call.Tool)}}}
		pd = policy.Decision{Code: policy.Code(d.Code)}
	default:
		g := ch.Grant
		d.Task, d.Grant, d.Checked = g.Task, g.ID, ch
		entry := ch.Entry
		d.GrantEntry = &entry
		preq.Task = taskOf(g)
		pd = p.policy.Decide(ctx, preq)
		d.Reasons = append(d.Reasons, Reason{Source: "grant", Code: string(grant.CodeOK),
			Message: fmt.Sprintf("task %s's grant permits %s (entry %d, %s)", g.Task, r.Call.Tool, entry+1, g.Scope[entry].Tool)})
		for _, pr := range pd.Reasons {
			d.Reasons = append(d.Reasons, Reason{Source: "policy", Code: string(pd.Code), Message: pr.Message, Policy: pr.Policy, Position: pr.Position})
		}
		d.Policies = pd.Policies()
		if !pd.Allow {
			d.Code = string(pd.Code)
			break
		}
		if err := p.grants.Reserve(ctx, ch); err != nil {
			bd := denyGrant(err)
			d.Code, d.Reasons = bd.Code, append(d.Reasons, bd.Reasons...)
			break
		}
		d.Allow, d.Code = true, CodeAllow
	}
	if err := p.record(ctx, preq, r.Call.Tool, pd, &d); err != nil {
		d.Allow, d.Code, d.Checked = false, CodeUnrecorded, nil
		d.Reasons = append(d.Reasons, Reason{Source: "record", Code: CodeUnrecorded, Message: "the decision could not be recorded, so the call is denied: " + err.Error()})
	}
	return d
}

// Recheck asks policy again about a call Authorize allowed, now that the
// session knows more (r.Session carries the findings inspection raised on
// this call): a policy that forbids on them denies the call after all. The
// grant is not checked again and its budget stays spent. A new denial is
// recorded; an unchanged allow is not recorded twice.
func (p *Point) Recheck(ctx context.Context, r Request, d Decision) Decision {
	if !d.Allow || d.Checked == nil {
		return d
	}
	preq := policy.Request{Agent: agentOf(r), Action: policy.Call, Target: r.Tool, Args: r.Call.Args, Session: r.Session, Task: taskOf(d.Checked.Grant)}
	if r.Read != nil {
		preq.Action, preq.Target = policy.Read, r.Read
	}
	pd := p.policy.Decide(ctx, preq)
	if pd.Allow {
		return d
	}
	out := d
	out.Allow, out.Code, out.Checked, out.Policies = false, string(pd.Code), nil, pd.Policies()
	out.Reasons = slices.Clone(d.Reasons)
	for _, pr := range pd.Reasons {
		out.Reasons = append(out.Reasons, Reason{Source: "policy", Code: string(pd.Code), Message: pr.Message, Policy: pr.Policy, Position: pr.Position})
	}
	if err := p.record(ctx, preq, r.Call.Tool, pd, &out); err != nil {
		out.Code = CodeUnrecorded
		out.Reasons = append(out.Reasons, Reason{Source: "record", Code: CodeUnrecorded, Message: "the decision could not be recorded, so the call is denied: " + err.Error()})
	}
	return out
}

func taskOf(g *grant.Grant) policy.Task {
	t := policy.Task{ID: g.Task, Intent: g.Intent, Ancestors: g.TaskChain()[1:]}
	if g.Act != nil {
		t.Requester = g.Act.Sub
	}
	return t
}

func denyGrant(err error) Decision {
	code := string(grant.CodeOf(err))
	d := Decision{Code: code, Reasons: []Reason{{Source: "grant", Code: code, Message: err.Error()}}}
	var ge *grant.Error
	if errors.As(err, &ge) {
		d.Task, d.Grant = ge.Task, ge.Grant // when the refusal is the holder's task's
	}
	return d
}

func agentOf(r Request) policy.Agent {
	c := r.Call.Agent
	if c == nil {
		return policy.Agent{Name: "unknown"}
	}
	a := policy.Agent{Name: c.Name, SPIFFEID: c.ID.String()}
	if c.Record != nil {
		a = recordAgent(c.Record)
	}
	a.Groups = r.Groups
	return a
}

// record emits the decision as an OCSF API Activity event.
func (p *Point) record(ctx context.Context, preq policy.Request, grantTool string, pd policy.Decision, d *Decision) error {
	pd.Allow, pd.Code = d.Allow, policy.Code(d.Code)
	e := policy.DecisionEvent(preq, pd)
	e.Metadata.Product.Feature = &events.Feature{Name: "authz"}
	e.Warden.Task, e.Warden.Grant, e.Warden.Tool, e.Warden.Reason = d.Task, d.Grant, grantTool, d.Code
	e.StatusCode = d.Code
	e.Message = "allowed by the task's grant and by policy"
	if !d.Allow {
		e.Message = "denied (" + d.Code + ")"
		for _, r := range d.Reasons {
			if r.Code == d.Code {
				e.Message += ": " + r.Message
				break
			}
		}
	}
	if d.GrantEntry != nil {
		if e.Warden.Attrs == nil {
			e.Warden.Attrs = map[string]string{}
		}
		e.Warden.Attrs["grant_entry"] = fmt.Sprint(*d.GrantEntry)
	}
	return p.sink.Emit(ctx, e)
}
