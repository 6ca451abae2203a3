package policy

import (
	"context"
	"fmt"

	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/eval"
)

func partialVariable(name types.String) types.Value { return eval.Variable(name) }

// Precheck answers, before any call is made, what policy decides for req
// whatever its arguments and session: the mint-time question "does Cedar
// forbid this tool for this agent (within this task) whatever the
// arguments?". req.Args and req.Session are ignored.
//
// It denies with CodeForbid when a forbid policy matches whatever the
// arguments and session are, with CodeError when a policy that applies fails
// to evaluate whatever they are, and with CodeNoPermit when no permit policy
// can match. Otherwise it allows with CodePermit, meaning only "not ruled
// out": the call is still decided by Decide, with its arguments.
//
// It uses cedar-go's partial evaluation (x/exp/eval.PartialPolicy) with
// context.args and context.session as unknowns, rather than a syntactic test
// such as "a forbid whose conditions do not mention context": partial
// evaluation also settles conditions over the agent's and tool's attributes
// and the task (forbid ... when { principal.tier == "foundation" &&
// resource.labels.contains("destructive") }), and leaves a condition
// unsettled exactly when its value depends on the unknowns. Where it cannot
// settle a policy, Precheck assumes the policy may go either way, so it
// never refuses what a call could be allowed.
func (e *Engine) Precheck(ctx context.Context, req Request) Decision {
	if d, ok := e.unavailable(); ok {
		return d
	}
	if err := ctx.Err(); err != nil {
		return e.stamp(deny(CodeError, "decision abandoned: "+err.Error()))
	}
	r, err := e.build(req, true)
	if err != nil {
		return e.stamp(deny(CodeInvalidRequest, "invalid request: "+err.Error()))
	}
	c := e.set.candidatesFor(r.principal, r.cedar.Action, r.resource, e.all)
	defer e.set.release(c)
	env := eval.Env{
		Entities:  r.entities,
		Principal: r.cedar.Principal,
		Action:    r.cedar.Action,
		Resource:  r.cedar.Resource,
		Context:   r.cedar.Context,
	}
	var forbids, errs, permits []Reason
	for id := range c.All() {
		in := e.info(id)
		outcome, msg := settle(env, e.set.policies[e.set.byID[string(id)]].ast)
		switch outcome {
		case settledFalse:
			continue
		case settledError:
			errs = append(errs, Reason{Policy: in.ID, Effect: in.Effect, Position: in.Position,
				Message: fmt.Sprintf("policy %q fails to evaluate whatever the arguments: %s", in.ID, msg)})
		case settledTrue:
			if in.Effect == Forbid {
				m := in.Reason
				if m == "" {
					m = fmt.Sprintf("forbidden by policy %q whatever the arguments", in.ID)
				}
				forbids = append(forbids, Reason{Policy: in.ID, Effect: Forbid, Position: in.Position, Message: m})
				continue
			}
			permits = append(permits, Reason{Policy: in.ID, Effect: Permit, Position: in.Position,
				Message: fmt.Sprintf("permitted by policy %q unless a forbid matches the arguments", in.ID)})
		case unsettled:
			if in.Effect == Permit {
				permits = append(permits, Reason{Policy: in.ID, Effect: Permit, Position: in.Position,
					Message: fmt.Sprintf("policy %q may permit, depending on the arguments and session", in.ID)})
			}
		}
	}
	var d Decision
	switch {
	case len(forbids) > 0:
		d = Decision{Code: CodeForbid, Reasons: append(forbids, errs...)}
	case len(errs) > 0:
		d = Decision{Code: CodeError, Reasons: errs}
	case len(permits) == 0:
		d = deny(CodeNoPermit, fmt.Sprintf("no policy permits %s to %s %s, whatever the arguments", r.cedar.Principal, r.cedar.Action.ID, r.cedar.Resource))
	default:
		d = Decision{Allow: true, Code: CodePermit, Reasons: permits}
	}
	d.Evaluated = c.len()
	return e.stamp(d)
}

type outcome int

const (
	unsettled    outcome = iota // depends on the unknowns
	settledFalse                // never applies
	settledTrue                 // always applies
	settledError                // always fails to evaluate
)

// settle partially evaluates p. cedar-go's partial evaluator is
// experimental; should it panic on a node it does not know, the policy is
// treated as unsettled.
func settle(env eval.Env, p *xast.Policy) (o outcome, msg string) {
	defer func() {
		if recover() != nil {
			o, msg = unsettled, ""
		}
	}()
	rest, keep := eval.PartialPolicy(env, p)
	switch {
	case !keep:
		return settledFalse, ""
	case len(rest.Conditions) == 0:
		return settledTrue, ""
	}
	// Conditions are evaluated in order: an error in the first remaining one
	// is reached whatever the unknowns are.
	if err, ok := eval.ToPartialError(rest.Conditions[0].Body); ok {
		return settledError, err.Error()
	}
	return unsettled, ""
}
