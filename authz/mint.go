package authz

import (
	"context"
	"strings"

	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/policy"
)

// Prechecker answers the mint-time question: *policy.Store.
type Prechecker interface {
	Precheck(ctx context.Context, req policy.Request) policy.Decision
	Decide(ctx context.Context, req policy.Request) policy.Decision
}

// MintPolicy is organisation policy as the grant service consults it when
// minting and delegating (it implements grant.Policy). Labels gives a tool's
// risk labels where the deployment declares them. The mint-time check only
// spares the agent a grant it could never use; the call-time decision is
// the one that counts. So for a tool whose labels are not known, a grant is
// refused only when policy rules the tool out whatever its labels: under
// all five, and under each one alone.
type MintPolicy struct {
	Policy Prechecker
	Labels func(tool string) (labels []string, known bool)
}

var _ grant.Policy = MintPolicy{}

// Precheck refuses a tool that policy forbids for the agent whatever the
// arguments.
func (m MintPolicy) Precheck(ctx context.Context, agent *identity.Record, task grant.TaskRef, tool string) error {
	server, name, ok := strings.Cut(tool, ".")
	if !ok {
		return &grant.Error{Code: grant.CodeInvalidInput, Msg: "tool " + tool + " is not server.tool"}
	}
	labelSets := [][]string{policy.AllLabels()}
	if labels, known := m.labels(tool); known {
		labelSets = [][]string{labels}
	} else {
		for _, l := range policy.AllLabels() {
			labelSets = append(labelSets, []string{l})
		}
	}
	var d policy.Decision
	for _, labels := range labelSets {
		d = m.Policy.Precheck(ctx, policy.Request{
			Agent:  recordAgent(agent),
			Action: policy.Call,
			Target: policy.Tool{Server: server, Name: name, Labels: labels},
			Task:   policy.Task{ID: task.ID, Intent: task.Intent, Requester: task.Requester, Ancestors: task.Ancestors},
		})
		if d.Allow {
			return nil
		}
	}
	if d.Code == policy.CodeUnavailable {
		return &grant.Error{Code: grant.CodeStateUnavailable, Msg: "policy is unavailable, so no grant can be minted: " + d.String()}
	}
	return &grant.Error{Code: grant.CodePolicyForbids, Msg: "policy rules out " + tool + " for " + agent.Name + " whatever the arguments: " + d.String()}
}

// ToolLabels implements grant.Labeler.
func (m MintPolicy) ToolLabels(tool string) ([]string, bool) { return m.labels(tool) }

func (m MintPolicy) labels(tool string) ([]string, bool) {
	if m.Labels == nil {
		return nil, false
	}
	return m.Labels(tool)
}

// MayDelegate asks policy whether from may delegate to to.
func (m MintPolicy) MayDelegate(ctx context.Context, from, to *identity.Record, task grant.TaskRef) error {
	d := m.Policy.Decide(ctx, policy.Request{
		Agent:  recordAgent(from),
		Action: policy.Delegate,
		Target: recordAgent(to),
		Task:   policy.Task{ID: task.ID, Intent: task.Intent, Requester: task.Requester, Ancestors: task.Ancestors},
	})
	if d.Allow {
		return nil
	}
	return &grant.Error{Code: grant.CodePolicyForbids, Msg: "policy does not let " + from.Name + " delegate to " + to.Name + ": " + d.String()}
}

func recordAgent(r *identity.Record) policy.Agent {
	return policy.Agent{Name: r.Name, SPIFFEID: r.ID.String(), Owner: r.Owner, Model: r.Model, Tier: r.Tier.String(), Labels: r.Labels}
}
