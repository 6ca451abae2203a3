package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// orgPolicies writes an organisation's policy set of n policies: a dozen
// deployment-wide rules (taint, findings, tier, model, labels) and, for the
// rest, per-tool and per-agent rules over 20 groups, n/10 servers of 5 tools
// and n/4 agents, with conditions over arguments, task and session. It is the
// shape a large deployment grows: most rules name a tool, a server or an
// agent.
func orgPolicies(n int) string {
	var b strings.Builder
	global := []string{
		`forbid(principal, action == Action::"call", resource is Tool) when { context.session.tainted && resource.labels.contains("egress") };`,
		`forbid(principal, action, resource) when { context.session.findings.contains("injection") };`,
		`forbid(principal, action == Action::"call", resource is Tool) when { principal.tier == "foundation" && resource.labels.contains("destructive") };`,
		`forbid(principal, action == Action::"call", resource) unless { ["claude-sonnet-4", "claude-opus-4"].contains(principal.model) };`,
		`forbid(principal, action == Action::"call", resource is Tool) when { context.task.intent like "*summar*" && resource.labels.contains("writes") };`,
		`permit(principal, action == Action::"call", resource is Tool) when { resource.labels.contains("reads") && !resource.labels.containsAny(["writes", "egress", "destructive"]) };`,
		`permit(principal, action == Action::"read", resource is Prompt);`,
		`forbid(principal, action == Action::"delegate", resource) when { principal.tier == "foundation" };`,
		`forbid(principal, action == Action::"write", resource is Memory) when { context.session.tainted };`,
		`permit(principal in Group::"g0", action in [Action::"read", Action::"write"], resource in Memory::"teams/g0");`,
	}
	for i := 0; i < n && i < len(global); i++ {
		fmt.Fprintf(&b, "@id(\"global-%d\")\n%s\n", i, global[i])
	}
	servers, agents := max(n/10, 1), max(n/4, 1)
	for i := len(global); i < n; i++ {
		s, tool, g, a := i%servers, i%5, i%20, i%agents
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "@id(\"tool-%d\")\npermit(principal in Group::\"g%d\", action == Action::\"call\", resource == Tool::\"s%d.t%d\")\nwhen { context.args has path && context.args.path like \"/data/g%d/*\" };\n", i, g, s, tool, g)
		case 1:
			fmt.Fprintf(&b, "@id(\"limit-%d\")\nforbid(principal, action == Action::\"call\", resource == Tool::\"s%d.t%d\")\nwhen { context.args has count && context.args.count > %d };\n", i, s, tool, 100+i)
		case 2:
			fmt.Fprintf(&b, "@id(\"agent-%d\")\npermit(principal == Agent::\"a%d\", action == Action::\"call\", resource in Server::\"s%d\")\nunless { context.session.tainted };\n", i, a, s)
		case 3:
			fmt.Fprintf(&b, "@id(\"team-%d\")\npermit(principal in Group::\"g%d\", action == Action::\"call\", resource in Server::\"s%d\")\nwhen { principal.hasTag(\"team\") && principal.getTag(\"team\") == \"t%d\" && context.task.intent like \"*report*\" };\n", i, g, s, g)
		}
	}
	return b.String()
}

func benchRequest() Request {
	return Request{
		Agent: Agent{
			Name: "a7", SPIFFEID: "spiffe://example.org/agent/a7", Owner: "alice", Model: "claude-sonnet-4",
			Tier: "advanced", Groups: []string{"g3"}, Labels: map[string]string{"team": "t3"},
		},
		Action:  Call,
		Target:  Tool{Server: "s3", Name: "t3", Labels: []string{LabelReads, LabelWrites}},
		Task:    Task{ID: "task-1", Intent: "write the quarterly report", Requester: "alice"},
		Args:    []byte(`{"path": "/data/g3/q3.md", "count": 5, "options": {"overwrite": true, "tags": ["q3", "finance"]}}`),
		Session: Session{ID: "s-1", Findings: []string{"pii"}},
	}
}

func benchDecide(b *testing.B, n int, all bool) {
	set, err := Compile("org.cedar", []byte(orgPolicies(n)))
	if err != nil {
		b.Fatal(err)
	}
	if set.Len() != n {
		b.Fatalf("%d policies, want %d", set.Len(), n)
	}
	e := newEngine(set, all)
	req := benchRequest()
	ctx := context.Background()
	d := e.Decide(ctx, req)
	if !d.Allow {
		b.Fatalf("benchmark request denied: %v", d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Decide(ctx, req)
	}
	b.ReportMetric(float64(d.Evaluated), "policies/op")
}

func BenchmarkDecide100Policies(b *testing.B)               { benchDecide(b, 100, false) }
func BenchmarkDecide100PoliciesUnpartitioned(b *testing.B)  { benchDecide(b, 100, true) }
func BenchmarkDecide2000Policies(b *testing.B)              { benchDecide(b, 2000, false) }
func BenchmarkDecide2000PoliciesUnpartitioned(b *testing.B) { benchDecide(b, 2000, true) }

func BenchmarkPrecheck2000Policies(b *testing.B) {
	e := NewEngine(mustCompile(b, orgPolicies(2000)))
	req := benchRequest()
	ctx := context.Background()
	if d := e.Precheck(ctx, req); !d.Allow {
		b.Fatalf("%v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Precheck(ctx, req)
	}
}

func BenchmarkArgsRecord(b *testing.B) {
	raw := benchRequest().Args
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ArgsRecord(raw); err != nil {
			b.Fatal(err)
		}
	}
}
