package respond

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/warden-run/warden/approval"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/tier"
)

// Stage names, for placing them in a pipeline.
const (
	StageBacklog   = "detection_backlog"
	StageContained = "contained"
	StageApproval  = "approval"
)

// CodeContained denies a call whose task or agent a detection rule has
// contained, while the durable revocation is being made.
const CodeContained = "contained_by_detection"

// ContainedStage denies the calls of a task or agent a detection rule is
// containing: effective the moment the rule fires, before the grant's
// revocation (or the agent's disabling) is durable. It belongs right after
// authorize (which names the call's task and its ancestors).
func ContainedStage(e *Engine) gateway.Stage {
	return gateway.Stage{Name: StageContained, Run: func(c *gateway.Call) *gateway.Denial {
		if c.Caller == nil {
			return &gateway.Denial{Code: "unauthenticated", Message: "no caller"}
		}
		var tasks []string
		if ch := c.Decision.Checked; ch != nil {
			tasks = ch.Grant.TaskChain()
		} else if c.Decision.Task != "" {
			tasks = []string{c.Decision.Task}
		}
		agent := c.Caller.ID.String()
		if rule, ok := e.Contained(agent, tasks); ok {
			msg := "detection rule " + rule + " contained this task: its grant is being revoked"
			ev := events.New(events.ClassAPIActivity, 99, feature)
			ev.ActivityName = "Other"
			ev.Metadata.Profiles = []string{"security_control"}
			ev.Metadata.CorrelationUID = c.Decision.Task
			ev.StatusID, ev.SeverityID, ev.StatusCode, ev.StatusDetail = events.StatusFailure, events.SeverityMedium, CodeContained, msg
			ev.ActionID, ev.DispositionID = events.ActionDenied, events.DispositionBlocked
			ev.Policy = &events.Policy{UID: rule}
			ev.Actor = &events.Actor{User: &events.User{UID: agent, Name: c.Caller.Name, Type: "agent"}}
			ev.Warden = &events.Warden{Agent: agent, Task: c.Decision.Task, Grant: c.Decision.Grant, Tool: c.Tool.ID, Reason: CodeContained,
				Attrs: map[string]string{"call": c.ID(), "rule": rule}}
			if err := e.o.Record.Emit(context.WithoutCancel(c.Ctx), ev); err != nil {
				msg += " (and the refusal could not be recorded: " + err.Error() + ")"
			}
			return &gateway.Denial{Code: CodeContained, Message: msg}
		}
		return nil
	}}
}

// presetOf is the preset that governs a call: the stricter of the
// deployment's tier and the calling agent's.
func presetOf(deployment tier.Tier, c *gateway.Call) tier.Preset {
	t := deployment
	if c.Caller != nil && c.Caller.Record != nil {
		t = tier.Stricter(t, c.Caller.Record.Tier)
	}
	if !t.Valid() {
		t = tier.Optimized // fail closed: an unknown tier is held to the strictest
	}
	return tier.For(t)
}

// BacklogStage denies the calls of an agent whose events detection has not
// caught up with, beyond its tier's DetectionMaxBehind (Advanced 1s,
// Optimized 250ms; Foundation never denies): a call must not run unwatched.
// Each denial is recorded in sink. It belongs right after authenticate.
func BacklogStage(e *Engine, deployment tier.Tier, sink events.Sink) gateway.Stage {
	return gateway.Stage{Name: StageBacklog, Run: func(c *gateway.Call) *gateway.Denial {
		if c.Caller == nil {
			return &gateway.Denial{Code: "unauthenticated", Message: "no caller"}
		}
		limit := presetOf(deployment, c).DetectionMaxBehind
		if limit <= 0 {
			return nil
		}
		agent := c.Caller.ID.String()
		behind := e.Behind(agent)
		if behind <= limit {
			return nil
		}
		msg := fmt.Sprintf("detection is %v behind on this agent's events (the tier allows %v): the call is refused rather than run unwatched", behind.Round(time.Millisecond), limit)
		ev := events.New(events.ClassAPIActivity, 99, feature)
		ev.ActivityName = "Other"
		ev.Metadata.Profiles = []string{"security_control"}
		ev.StatusID, ev.SeverityID, ev.StatusCode, ev.StatusDetail = events.StatusFailure, events.SeverityMedium, CodeBacklog, msg
		ev.ActionID, ev.DispositionID = events.ActionDenied, events.DispositionBlocked
		ev.Actor = &events.Actor{User: &events.User{UID: agent, Name: c.Caller.Name, Type: "agent"}}
		ev.Warden = &events.Warden{Agent: agent, Tool: c.Tool.ID, Reason: CodeBacklog,
			Attrs: map[string]string{"behind_ms": fmt.Sprint(behind.Milliseconds()), "limit_ms": fmt.Sprint(limit.Milliseconds()), "call": c.ID()}}
		if err := sink.Emit(context.WithoutCancel(c.Ctx), ev); err != nil {
			msg += " (and the refusal could not be recorded: " + err.Error() + ")"
		}
		return &gateway.Denial{Code: CodeBacklog, Message: msg}
	}}
}

// sensitive labels: a call to a tool with one of them is a sensitive call.
var sensitiveLabels = []string{"egress", "writes", "destructive"}

func sensitive(labels []string) bool {
	if len(labels) == 0 {
		return true // labels fail closed
	}
	for _, l := range labels {
		if slices.Contains(sensitiveLabels, l) {
			return true
		}
	}
	return false
}

// ApprovalStage holds for a human the calls that need one: every sensitive
// call (a tool labelled egress, writes or destructive) of an agent a
// detection playbook put under require_approval, and at a tier whose
// preset sets ApprovalForHighRisk (Optimized), every destructive call. It
// belongs after authorize (only a call the grant and policy allow is worth
// a human's time) and before upstream.
func ApprovalStage(svc *approval.Service, deployment tier.Tier) gateway.Stage {
	return gateway.Stage{Name: StageApproval, Run: func(c *gateway.Call) *gateway.Denial {
		if c.Caller == nil {
			return &gateway.Denial{Code: "unauthenticated", Message: "no caller"}
		}
		agent := c.Caller.ID.String()
		if req, ok := svc.Required(agent); ok && sensitive(c.Tool.Labels) {
			return HoldCall(svc, c, req.Rule, fmt.Sprintf("detection rule %s requires a human to approve this agent's sensitive calls until %s (%s)",
				req.Rule, req.Until.Format(time.RFC3339), req.Reason))
		}
		if presetOf(deployment, c).ApprovalForHighRisk && (len(c.Tool.Labels) == 0 || c.Tool.HasLabel("destructive")) {
			return HoldCall(svc, c, "tier_high_risk", "the tier holds destructive calls for a human")
		}
		return nil
	}}
}

// HoldCall holds one call for a human: it waits (bounded) for a decision
// and returns nil when an operator approved this exact call, or the
// denial. Controls that need a human for a call (the Optimized taint flow
// rule, for one) call it instead of denying:
//
//	if d := respond.HoldCall(approvals, c, "taint_sound", reason); d != nil {
//		return d
//	}
func HoldCall(svc *approval.Service, c *gateway.Call, rule, reason string) *gateway.Denial {
	if svc == nil {
		return &gateway.Denial{Stage: StageApproval, Code: approval.CodeUnavailable, Message: reason + "; approvals are not available in this process, so the call is denied"}
	}
	out := svc.Hold(c.Ctx, approval.Request{Agent: c.Caller.ID.String(), Task: c.Decision.Task, Tool: c.Tool.ID, Args: c.Args, Rule: rule, Reason: reason})
	if out.Allow {
		c.Approved()
		return nil
	}
	return &gateway.Denial{Stage: StageApproval, Code: out.Code, Message: out.Message}
}
