package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Code is a stable, machine-readable reason for a decision. Codes are part of
// Warden's API (events, HTTP answers and detection rules use them) and are
// never renamed.
type Code string

// Decision codes.
const (
	CodePermit         Code = "policy_permit"          // a permit matched and no forbid did
	CodeForbid         Code = "policy_forbid"          // a forbid matched
	CodeNoPermit       Code = "policy_no_permit"       // no permit matched
	CodeError          Code = "policy_error"           // a policy that applies failed to evaluate
	CodeUnavailable    Code = "policy_unavailable"     // no policy engine, or the policy store failed to load
	CodeInvalidRequest Code = "policy_invalid_request" // the request or its arguments are malformed
)

// Request is one question to the policy: may Agent do Action to Target,
// within Task, with these arguments, in this session?
type Request struct {
	Agent  Agent  // the principal
	Action Action // call, read, write or delegate
	Target Target // Tool (call), Resource/Prompt/Memory (read, write), Agent (delegate)
	Task   Task
	// Args are the call's arguments as a JSON object (see ArgsRecord);
	// empty means none.
	Args    json.RawMessage
	Session Session
}

// Reason is one reason for a decision.
type Reason struct {
	Policy   string `json:"policy,omitempty"` // the policy's id; empty when no policy is to blame
	Effect   Effect `json:"effect,omitempty"`
	Position string `json:"position,omitempty"` // FILE:LINE:COLUMN of the policy
	Message  string `json:"message"`
}

// Decision is the answer to a Request.
type Decision struct {
	Allow   bool     `json:"allow"`
	Code    Code     `json:"code"`
	Reasons []Reason `json:"reasons"`
	// Version is the policy store version that decided, 0 for a set that
	// did not come from the store.
	Version int64 `json:"version,omitempty"`
	// File is the name of the deciding policy set's file.
	File string `json:"file,omitempty"`
	// Digest is the hex SHA-256 of the deciding policy set's source.
	Digest string `json:"digest,omitempty"`
	// Evaluated is the number of policies evaluated.
	Evaluated int `json:"evaluated"`
}

// Policies returns the ids of the policies that decided, in file order.
func (d Decision) Policies() []string {
	var ids []string
	for _, r := range d.Reasons {
		if r.Policy != "" {
			ids = append(ids, r.Policy)
		}
	}
	return ids
}

func (d Decision) String() string {
	verdict := "deny"
	if d.Allow {
		verdict = "allow"
	}
	msgs := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		msgs[i] = r.Message
	}
	return fmt.Sprintf("%s (%s): %s", verdict, d.Code, strings.Join(msgs, "; "))
}

func deny(code Code, msg string) Decision {
	return Decision{Code: code, Reasons: []Reason{{Message: msg}}}
}

// Engine decides requests against one policy set. It is immutable and safe
// for concurrent use; a nil *Engine denies every request.
type Engine struct {
	set     *Set
	version int64
	err     error // set: the engine is unavailable and denies everything
	all     bool  // evaluate every policy (the unpartitioned reference)
	cache   *caches
}

// NewEngine returns an engine deciding with set.
func NewEngine(set *Set) *Engine {
	return newEngine(set, false)
}

// newEngine returns an engine; with all, it evaluates every policy of the
// set, bypassing the index (the reference the index is tested against).
func newEngine(set *Set, all bool) *Engine {
	if set == nil {
		return unavailableEngine(errors.New("no policy set"))
	}
	return &Engine{set: set, all: all, cache: newCaches()}
}

func unavailableEngine(err error) *Engine { return &Engine{err: err} }

// Set returns the engine's policy set, nil when the engine is unavailable.
func (e *Engine) Set() *Set {
	if e == nil {
		return nil
	}
	return e.set
}

// Version returns the store version the engine decides with (0 if none).
func (e *Engine) Version() int64 {
	if e == nil {
		return 0
	}
	return e.version
}

// Err returns why the engine is unavailable, or nil.
func (e *Engine) Err() error {
	if e == nil {
		return errors.New("no policy engine")
	}
	return e.err
}

// request is a Request turned into Cedar's terms.
type request struct {
	cedar     cedar.Request
	entities  entitySlice
	principal []types.EntityUID // principal and its ancestors
	resource  []types.EntityUID // resource and its ancestors
}

func (e *Engine) unavailable() (Decision, bool) {
	if e == nil {
		return deny(CodeUnavailable, "no policy engine: denied"), true
	}
	if e.err != nil {
		return deny(CodeUnavailable, "policy unavailable: "+e.err.Error()), true
	}
	return Decision{}, false
}

// build converts req. With partialCtx, the arguments and session are left
// unknown (partial evaluation variables) rather than read from req.
func (e *Engine) build(req Request, partialCtx bool) (*request, error) {
	t, err := normTarget(req.Target)
	if err != nil {
		return nil, err
	}
	agent, err := e.cache.agent(req.Agent)
	if err != nil {
		return nil, err
	}
	target, err := e.cache.target(t)
	if err != nil {
		return nil, err
	}
	if !req.Action.accepts(target.UID.Type) {
		switch req.Action {
		case Call, Read, Write, Delegate:
			return nil, fmt.Errorf("action %q does not apply to a %s", req.Action, target.UID.Type)
		}
		return nil, fmt.Errorf("unknown action %q (want call, read, write or delegate)", req.Action)
	}
	task, err := e.cache.task(req.Task)
	if err != nil {
		return nil, err
	}
	var args, session types.Value
	if partialCtx {
		args, session = partialVariable("args"), partialVariable("session")
	} else {
		rec, err := e.set.args(req.Args)
		if err != nil {
			return nil, err
		}
		args = rec
		if session, err = e.cache.session(req.Session); err != nil {
			return nil, err
		}
	}
	r := &request{
		cedar: cedar.Request{
			Principal: agent.UID,
			Action:    req.Action.uid(),
			Resource:  target.UID,
			Context: types.NewRecord(types.RecordMap{
				"task":    task.UID,
				"args":    args,
				"session": session,
			}),
		},
	}
	r.entities = entitySlice{agent, target, task}
	if target.UID == agent.UID { // delegating to itself: one entity, the principal's
		target = agent
		r.entities = entitySlice{agent, task}
	}
	r.principal = ancestors(agent, nil)
	r.resource = ancestors(target, nil)
	return r, nil
}

// Decide decides req: allow only if a permit matches and no forbid does, and
// no policy that applies fails to evaluate. It never panics and never fails
// open: an unavailable engine, a malformed request and an evaluation error
// all deny, each with its own code. Should the evaluator itself fail (a
// panic in cedar-go), the decision is a deny with CodeError.
func (e *Engine) Decide(ctx context.Context, req Request) (d Decision) {
	if d, ok := e.unavailable(); ok {
		return d
	}
	defer func() {
		if p := recover(); p != nil {
			d = e.stamp(deny(CodeError, fmt.Sprintf("policy evaluation failed: %v", p)))
		}
	}()
	if err := ctx.Err(); err != nil {
		return e.stamp(deny(CodeError, "decision abandoned: "+err.Error()))
	}
	r, err := e.build(req, false)
	if err != nil {
		return e.stamp(deny(CodeInvalidRequest, "invalid request: "+err.Error()))
	}
	c := e.set.candidatesFor(r.principal, r.cedar.Action, r.resource, e.all)
	dec, diag := cedar.Authorize(c, r.entities, r.cedar)
	n := c.len()
	e.set.release(c)
	d = e.decision(dec, diag, r)
	d.Evaluated = n
	return d
}

func (e *Engine) stamp(d Decision) Decision {
	d.Version = e.version
	d.File = e.set.name
	d.Digest = e.set.digest
	return d
}

// reason is the reason a matching policy gives.
func (e *Engine) reason(id cedar.PolicyID) Reason {
	i, ok := e.set.byID[string(id)]
	if !ok {
		return Reason{Policy: string(id), Message: fmt.Sprintf("policy %q decided", id)}
	}
	p := &e.set.policies[i]
	return Reason{Policy: p.ID, Effect: p.Effect, Position: p.Position, Message: p.msg}
}

func (e *Engine) info(id cedar.PolicyID) *Info {
	if i, ok := e.set.byID[string(id)]; ok {
		return &e.set.policies[i].Info
	}
	return &Info{ID: string(id)}
}

func (e *Engine) decision(dec cedar.Decision, diag cedar.Diagnostic, r *request) Decision {
	var d Decision
	var errs []Reason
	for _, de := range diag.Errors {
		in := e.info(de.PolicyID)
		errs = append(errs, Reason{
			Policy: in.ID, Effect: in.Effect, Position: in.Position,
			Message: fmt.Sprintf("policy %q failed to evaluate: %s", in.ID, de.Message),
		})
	}
	switch {
	case dec == cedar.Deny && len(diag.Reasons) > 0:
		d.Code = CodeForbid
		d.Reasons = make([]Reason, 0, len(diag.Reasons)+len(errs))
		for _, dr := range diag.Reasons {
			d.Reasons = append(d.Reasons, e.reason(dr.PolicyID))
		}
		d.Reasons = append(d.Reasons, errs...)
	case len(errs) > 0:
		d.Code = CodeError
		d.Reasons = errs
	case dec == cedar.Allow:
		d.Allow, d.Code = true, CodePermit
		d.Reasons = make([]Reason, 0, len(diag.Reasons)+len(errs))
		for _, dr := range diag.Reasons {
			d.Reasons = append(d.Reasons, e.reason(dr.PolicyID))
		}
	default:
		d.Code = CodeNoPermit
		d.Reasons = []Reason{{Message: fmt.Sprintf("no policy permits %s to %s %s", r.cedar.Principal, r.cedar.Action.ID, r.cedar.Resource)}}
	}
	return e.stamp(d)
}
