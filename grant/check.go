package grant

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/warden-run/warden/identity"
)

// Call is one tool call an agent makes under a grant.
type Call struct {
	// Agent was verified by identity on this very request.
	Agent *identity.Caller
	Token string // the grant
	Tool  string // server.tool
	Args  json.RawMessage
	// Proof of possession of the key the grant is bound to: MTLS when the
	// agent presented its X.509-SVID on this connection (the handshake
	// proved Agent.KeyThumbprint); otherwise a DPoP proof for this request.
	MTLS   bool
	DPoP   string
	Method string // the HTTP method the DPoP proof must name
	URL    string // the URL the DPoP proof must name
}

// Checked is a call the grant permits, ready to have its budget reserved.
type Checked struct {
	Grant *Grant
	Entry int            // the index of the own scope entry that permits the call
	Args  map[string]any // the decoded arguments; nil when no entry for the tool constrains them
	keys  []budgetKey
}

// Fixed reports whether the grant entry that permits the call pins argument
// name to a closed set of values (the Optimized taint rule's question).
func (c *Checked) Fixed(name string) bool { return c.Grant.scope.entries[c.Entry].Fixed(name) }

// Check decides whether the grant permits the call: the token is valid and
// this agent's, possession of its key is proven, its task and every ancestor
// task are still open, and its scope and every ancestor's scope permit the
// tool with these arguments. It reserves nothing; Reserve does, once every
// other check has passed.
func (s *Service) Check(ctx context.Context, c Call) (*Checked, error) {
	if c.Agent == nil {
		return nil, errorf(CodeInternal, "call has no verified caller")
	}
	g, err := s.ver.Verify(c.Token)
	if err != nil {
		return nil, err
	}
	if g.Subject != c.Agent.ID.String() {
		return nil, errorf(CodeWrongAgent, "this grant was issued to %s, not to %s", g.Subject, c.Agent.ID)
	}
	if err := s.proveBinding(g, c); err != nil {
		return nil, err
	}
	// From here the caller holds the grant: a refusal is its task's.
	if err := s.st.checkTasks(g.TaskChain()); err != nil {
		return nil, attribute(err, g)
	}
	// The arguments are decoded only for a scope whose entries for this tool
	// constrain them; otherwise they are only checked to be a JSON object,
	// which refuses what decoding them would refuse.
	var args map[string]any
	var aerr *Error
	if g.scope.constrains(c.Tool) || slices.ContainsFunc(g.parents, func(ps *compiledScope) bool { return ps.constrains(c.Tool) }) {
		args, aerr = decodeArgs(c.Args)
	} else {
		aerr = checkArgsObject(c.Args)
	}
	if aerr != nil {
		return nil, attribute(aerr, g)
	}
	entry, serr := g.scope.check(c.Tool, args)
	if serr != nil {
		return nil, attribute(serr, g)
	}
	keys := []budgetKey{{jti: g.ID, slot: -1}}
	if g.scope.entries[entry].budget > 0 {
		keys = append(keys, budgetKey{jti: g.ID, slot: entry})
	}
	for i, ps := range g.parents {
		pe, perr := ps.check(c.Tool, args)
		if perr != nil {
			perr.Msg = "the grant of ancestor task " + g.Parents[i].Task + " refuses it: " + perr.Msg
			return nil, attribute(perr, g)
		}
		keys = append(keys, budgetKey{jti: g.Parents[i].JTI, slot: -1})
		if ps.entries[pe].budget > 0 {
			keys = append(keys, budgetKey{jti: g.Parents[i].JTI, slot: pe})
		}
	}
	return &Checked{Grant: g, Entry: entry, Args: args, keys: keys}, nil
}

// attribute names g's task and grant in a refusal.
func attribute(err error, g *Grant) error {
	var e *Error
	if errors.As(err, &e) {
		e.Task, e.Grant = g.Task, g.ID
	}
	return err
}

func (s *Service) proveBinding(g *Grant, c Call) error {
	var jkt string
	if c.MTLS {
		jkt = c.Agent.KeyThumbprint
	} else {
		var err error
		if jkt, err = s.dpop.Verify(c.DPoP, c.Method, c.URL, c.Token); err != nil {
			return err
		}
	}
	if jkt == "" || jkt != g.Cnf.JKT {
		return errorf(CodeBindingUnproven, "the caller proved a key other than the one the grant is bound to (a grant is useless to anyone but the agent it was issued to)")
	}
	return nil
}

// Reserve takes one call from the grant's budget, its entry's budget and
// every ancestor's, all or nothing, persisting as needed before it returns.
// Call it after every other check passed and before forwarding the call.
func (s *Service) Reserve(ctx context.Context, ch *Checked) error {
	return s.st.reserve(ctx, ch.keys)
}

// Visible checks a grant as Check does (token, agent, binding, task states)
// and returns which tool ids it names at all, its own scope and every
// ancestor's, argument constraints aside: tools/list shows an agent only
// the tools its task could call.
func (s *Service) Visible(ctx context.Context, c Call) (func(tool string) bool, *Grant, error) {
	if c.Agent == nil {
		return nil, nil, errorf(CodeInternal, "call has no verified caller")
	}
	g, err := s.ver.Verify(c.Token)
	if err != nil {
		return nil, nil, err
	}
	if g.Subject != c.Agent.ID.String() {
		return nil, nil, errorf(CodeWrongAgent, "this grant was issued to %s, not to %s", g.Subject, c.Agent.ID)
	}
	if err := s.proveBinding(g, c); err != nil {
		return nil, nil, err
	}
	if err := s.st.checkTasks(g.TaskChain()); err != nil {
		return nil, nil, err
	}
	return func(tool string) bool {
		if !g.scope.names(tool) {
			return false
		}
		for _, p := range g.parents {
			if !p.names(tool) {
				return false
			}
		}
		return true
	}, g, nil
}
