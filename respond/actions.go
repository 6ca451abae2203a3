package respond

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

// ActionType names a response action.
type ActionType string

// The actions a playbook may take.
const (
	ActRevokeGrant     ActionType = "revoke_grant"     // revoke the task's grant (and everything delegated from it)
	ActDisableAgent    ActionType = "disable_agent"    // disable the agent: all its grants are revoked, its sessions dropped
	ActKillSessions    ActionType = "kill_sessions"    // cancel the agent's calls in flight and close its sessions
	ActKillSandboxes   ActionType = "kill_sandboxes"   // kill the agent's per-session tool-server processes (sandboxes)
	ActRequireApproval ActionType = "require_approval" // hold the agent's next sensitive calls for a human
	ActSnapshotMemory  ActionType = "snapshot_memory"  // snapshot the agent's memory for forensics and rollback
	ActNotify          ActionType = "notify"           // post the alert to the webhook
)

var actionOrder = []ActionType{ActRevokeGrant, ActDisableAgent, ActKillSessions, ActKillSandboxes, ActRequireApproval, ActSnapshotMemory, ActNotify}

func knownAction(t ActionType) bool {
	for _, a := range actionOrder {
		if a == t {
			return true
		}
	}
	return false
}

func actionNames() []string {
	out := make([]string, len(actionOrder))
	for i, a := range actionOrder {
		out[i] = string(a)
	}
	return out
}

// Action is one compiled action.
type Action struct {
	Type ActionType    `json:"type"`
	For  time.Duration `json:"for,omitempty"` // require_approval
}

// defaultApprovalFor is how long require_approval holds an agent's
// sensitive calls unless the playbook says otherwise.
const defaultApprovalFor = time.Hour

func compileActions(specs []ActionSpec) ([]Action, error) {
	var out []Action
	for _, s := range specs {
		a := Action{Type: ActionType(s.Type)}
		if !knownAction(a.Type) {
			return nil, fmt.Errorf("unknown action %q", s.Type)
		}
		if a.Type == ActRequireApproval {
			a.For = defaultApprovalFor
			if s.For != "" {
				d, err := ParseSpan(s.For)
				if err != nil || d <= 0 {
					return nil, fmt.Errorf("require_approval for %q: want a positive duration", s.For)
				}
				a.For = d
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// The containment interfaces. Each is small so that tests use fakes; the
// composition root (internal/setup) implements them over the grant
// service, the identity service, the gateway, approvals and memory. A
// missing implementation makes its action fail (recorded), never succeed
// silently.

// Revoker revokes a task's grant and everything delegated from it, or,
// when an alert names no task (a refusal made before the grant's task was
// known), every open task of the agent.
type Revoker interface {
	RevokeTask(ctx context.Context, task, reason string) error
	RevokeAgentTasks(ctx context.Context, agent, reason string) (int, error)
}

// agentTarget marks a revoke_grant target that is an agent (all its open
// tasks) rather than one task.
const agentTarget = "agent "

// Disabler disables an agent (its grants are revoked and its sessions
// dropped by the hooks the composition root wires).
type Disabler interface {
	DisableAgent(ctx context.Context, agent, reason string) error
}

// SessionKiller cancels an agent's calls in flight and closes its sessions.
type SessionKiller interface {
	KillSessions(ctx context.Context, agent, reason string) error
}

// SandboxKiller kills an agent's tool-server processes (its sandboxes)
// and says how many.
type SandboxKiller interface {
	KillSandboxes(ctx context.Context, agent, reason string) (int, error)
}

// ApprovalRequirer holds an agent's sensitive calls for a human until a
// time.
type ApprovalRequirer interface {
	RequireApproval(ctx context.Context, agent, rule, reason string, until time.Time) error
}

// MemorySnapshotter snapshots an agent's memory and returns the snapshot's
// id.
type MemorySnapshotter interface {
	SnapshotMemory(ctx context.Context, agent, task, reason string) (string, error)
}

// Actions are the implementations the engine's playbooks call.
type Actions struct {
	Revoker   Revoker
	Disabler  Disabler
	Sessions  SessionKiller
	Sandboxes SandboxKiller
	Approvals ApprovalRequirer
	Memory    MemorySnapshotter
}

// ErrPermanent marks an action failure that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

// Automatic reports whether the tier runs an action automatically when a
// rule fires (design table, phase 7): Foundation notifies only;
// Advanced adds automatic revocation (revoke the grant, kill the sessions,
// hold sensitive calls for approval); Optimized runs full playbooks.
// An action that is not automatic is recorded as recommended, not run.
func Automatic(p tier.Preset, a ActionType) bool {
	switch a {
	case ActNotify:
		return true
	case ActRevokeGrant, ActKillSessions, ActRequireApproval:
		return p.AutoRevoke
	default:
		return p.AutoRevoke && p.Tier >= tier.Optimized
	}
}

// Outcome of one action.
type Outcome string

// Outcomes.
const (
	OutcomeDone        Outcome = "done"
	OutcomeFailed      Outcome = "failed"
	OutcomeRecommended Outcome = "recommended" // the tier does not run it automatically
	OutcomeQueued      Outcome = "queued"      // notify: handed to the notifier
	OutcomeAlready     Outcome = "already"     // the same action on the same target already succeeded
)

// ActionResult is what one action did, as recorded.
type ActionResult struct {
	Alert    string        `json:"alert"`
	Rule     string        `json:"rule"`
	Action   ActionType    `json:"action"`
	Target   string        `json:"target"`
	Outcome  Outcome       `json:"outcome"`
	Attempts int           `json:"attempts"`
	Error    string        `json:"error,omitempty"`
	Detail   string        `json:"detail,omitempty"`
	Took     time.Duration `json:"took"`
	// SinceEvent is the time from the engine taking the completing event to
	// the action's effect (containment actions).
	SinceEvent time.Duration `json:"since_event"`
}

// target is what an action acts on, for idempotence and the record.
func target(a Alert, t ActionType) (string, error) {
	switch t {
	case ActRevokeGrant:
		switch {
		case a.Task != "":
			return a.Task, nil
		case a.Agent != "":
			return agentTarget + a.Agent, nil
		}
		return "", fmt.Errorf("%w: the alert names no task or agent to revoke", ErrPermanent)
	case ActNotify:
		return a.ID, nil
	case ActSnapshotMemory:
		if a.Agent == "" {
			return "", fmt.Errorf("%w: the alert names no agent", ErrPermanent)
		}
		return a.Agent + "#" + a.Task, nil
	default:
		if a.Agent == "" {
			return "", fmt.Errorf("%w: the alert names no agent", ErrPermanent)
		}
		return a.Agent, nil
	}
}

// idemKey identifies an action on a target: the same action on the same
// target is done once, however many rules or alerts ask for it.
func idemKey(t ActionType, tgt string) string {
	h := sha256.Sum256([]byte(string(t) + "\x00" + tgt))
	return hex.EncodeToString(h[:12])
}

// retry schedule for containment actions: quick, because the agent is
// still calling.
var retryDelays = []time.Duration{0, 5 * time.Millisecond, 25 * time.Millisecond, 125 * time.Millisecond}

// run performs one containment action with retries.
func (x *Actions) run(ctx context.Context, a Alert, act Action, tgt, reason string, now func() time.Time) (detail string, attempts int, err error) {
	for i, d := range retryDelays {
		if d > 0 {
			select {
			case <-ctx.Done():
				return "", attempts, ctx.Err()
			case <-time.After(d):
			}
		}
		attempts = i + 1
		detail, err = x.once(ctx, a, act, tgt, reason, now)
		if err == nil || errors.Is(err, ErrPermanent) {
			return detail, attempts, err
		}
	}
	return detail, attempts, err
}

func (x *Actions) once(ctx context.Context, a Alert, act Action, tgt, reason string, now func() time.Time) (string, error) {
	missing := func(what string) error {
		return fmt.Errorf("%w: %s is not available in this process", ErrPermanent, what)
	}
	switch act.Type {
	case ActRevokeGrant:
		if x.Revoker == nil {
			return "", missing("grant revocation")
		}
		if agent, ok := strings.CutPrefix(tgt, agentTarget); ok {
			n, err := x.Revoker.RevokeAgentTasks(ctx, agent, reason)
			return fmt.Sprintf("the alert names no task: %d open tasks of the agent revoked", n), err
		}
		return "task " + tgt + " revoked", x.Revoker.RevokeTask(ctx, tgt, reason)
	case ActDisableAgent:
		if x.Disabler == nil {
			return "", missing("agent disabling")
		}
		return "agent disabled", x.Disabler.DisableAgent(ctx, tgt, reason)
	case ActKillSessions:
		if x.Sessions == nil {
			return "", missing("the gateway")
		}
		return "sessions closed", x.Sessions.KillSessions(ctx, tgt, reason)
	case ActKillSandboxes:
		if x.Sandboxes == nil {
			return "", missing("the gateway")
		}
		n, err := x.Sandboxes.KillSandboxes(ctx, tgt, reason)
		return strconv.Itoa(n) + " tool-server processes killed", err
	case ActRequireApproval:
		if x.Approvals == nil {
			return "", missing("approvals")
		}
		until := now().Add(act.For)
		return "sensitive calls held for approval until " + until.UTC().Format(time.RFC3339),
			x.Approvals.RequireApproval(ctx, tgt, a.Rule, reason, until)
	case ActSnapshotMemory:
		if x.Memory == nil {
			return "", missing("memory")
		}
		id, err := x.Memory.SnapshotMemory(ctx, a.Agent, a.Task, reason)
		return "snapshot " + id, err
	}
	return "", fmt.Errorf("%w: unknown action %s", ErrPermanent, act.Type)
}

// remediationEvent records an action as OCSF Remediation Activity (7001).
func remediationEvent(a Alert, r ActionResult) events.Event {
	activity, name := events.ActivityIsolate, "Isolate"
	switch r.Action {
	case ActKillSessions, ActKillSandboxes:
		activity, name = events.ActivityEvict, "Evict"
	case ActSnapshotMemory, ActNotify:
		activity, name = 99, "Other"
	}
	e := events.New(events.ClassRemediationActivity, activity, feature)
	e.ActivityName = name
	e.Time = time.Now().UnixMilli()
	e.Metadata.CorrelationUID = a.Task
	e.SeverityID = a.Severity
	e.Message = fmt.Sprintf("%s on %s for rule %s: %s", r.Action, r.Target, a.Rule, r.Outcome)
	if r.Detail != "" {
		e.Message += " (" + r.Detail + ")"
	}
	switch r.Outcome {
	case OutcomeDone, OutcomeQueued, OutcomeAlready:
		e.StatusID = events.StatusSuccess
	case OutcomeFailed:
		e.StatusID = events.StatusFailure
		e.StatusDetail = r.Error
	}
	e.StatusCode = "respond_" + string(r.Action) + "_" + string(r.Outcome)
	e.Policy = &events.Policy{UID: a.Rule, Name: a.Title}
	e.Actor = &events.Actor{User: &events.User{UID: "warden:respond", Name: "respond", Type: "service"}}
	if a.Agent != "" {
		e.Resources = append(e.Resources, events.Resource{UID: a.Agent, Type: "agent"})
	}
	if a.Task != "" {
		e.Resources = append(e.Resources, events.Resource{UID: a.Task, Type: "task"})
	}
	attrs := map[string]string{
		"alert": a.ID, "rule": a.Rule, "action": string(r.Action), "target": r.Target, "outcome": string(r.Outcome),
		"attempts": strconv.Itoa(r.Attempts), "took_us": strconv.FormatInt(r.Took.Microseconds(), 10),
	}
	if r.SinceEvent > 0 {
		attrs["since_event_us"] = strconv.FormatInt(r.SinceEvent.Microseconds(), 10)
	}
	if r.Error != "" {
		attrs["error"] = r.Error
	}
	e.Warden = &events.Warden{Agent: a.Agent, Task: a.Task, Grant: a.Grant, Tool: a.Tool, Reason: string(r.Action), Attrs: attrs}
	return e
}

// findingEvent records an alert as OCSF Detection Finding (2004).
func findingEvent(a Alert) events.Event {
	e := events.New(events.ClassDetectionFinding, events.ActivityCreate, feature)
	e.Time = time.Now().UnixMilli()
	e.SeverityID = a.Severity
	e.Metadata.CorrelationUID = a.Task
	e.Metadata.Profiles = []string{"security_control"}
	e.FindingInfo = &events.FindingInfo{UID: a.ID, Title: a.Title, Types: []string{"rule:" + a.Rule}}
	e.Policy = &events.Policy{UID: a.Rule, Name: a.Title}
	e.StatusCode = "rule_fired"
	e.Message = fmt.Sprintf("rule %s fired for %s", a.Rule, a.Key)
	if a.Agent != "" {
		e.Actor = &events.Actor{User: &events.User{UID: a.Agent, Type: "agent"}}
		if a.Session != "" {
			e.Actor.Session = &events.Session{UID: a.Session}
		}
	}
	attrs := map[string]string{"rule": a.Rule, "kind": string(a.Kind), "key": a.Key, "trigger": a.Trigger,
		"value": strconv.FormatFloat(a.Value, 'g', -1, 64)}
	e.Warden = &events.Warden{Agent: a.Agent, Task: a.Task, Grant: a.Grant, Tool: a.Tool, Reason: "rule_fired", Attrs: attrs}
	return e
}
