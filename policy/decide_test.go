package policy

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func exampleSet(t testing.TB) *Set {
	t.Helper()
	src, err := os.ReadFile("../examples/policy/warden.cedar")
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile("warden.cedar", src)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func financeAgent() Agent {
	return Agent{
		Name: "billing", SPIFFEID: "spiffe://example.org/agent/billing", Owner: "alice",
		Model: "claude-sonnet-4", Tier: "advanced", Groups: []string{"finance"},
		Labels: map[string]string{"team": "finance"},
	}
}

var (
	payTool    = Tool{Server: "payments", Name: "pay", Labels: []string{LabelWrites, LabelEgress}}
	searchTool = Tool{Server: "search", Name: "query", Labels: []string{LabelReads}}
	writeTool  = Tool{Server: "files", Name: "write", Labels: []string{LabelWrites}}
	mailTool   = Tool{Server: "mail", Name: "send", Labels: []string{LabelEgress}}
	wipeTool   = Tool{Server: "files", Name: "wipe", Labels: []string{LabelDestructive, LabelWrites}}
)

func call(a Agent, tool Tool, args string) Request {
	return Request{Agent: a, Action: Call, Target: tool, Task: Task{ID: "t-1", Intent: "pay the March invoices"}, Args: []byte(args)}
}

func TestDecide(t *testing.T) {
	e := NewEngine(exampleSet(t))
	support := financeAgent()
	support.Name, support.Groups, support.Labels = "helpdesk", nil, map[string]string{"team": "support"}
	foundation := financeAgent()
	foundation.Tier = "foundation"

	tainted := call(financeAgent(), payTool, `{"amount": 10}`)
	tainted.Session = Session{ID: "s-1", Tainted: true, TaintSources: []string{"web.fetch"}}
	injected := call(financeAgent(), searchTool, `{"q": "x"}`)
	injected.Session.Findings = []string{"injection"}
	summary := call(financeAgent(), writeTool, `{"path": "/data/summary.txt"}`)
	summary.Task.Intent = "summarise the quarter"
	unknownModel := call(financeAgent(), searchTool, `{}`)
	unknownModel.Agent.Model = "homebrew-7b"
	unlabelled := call(financeAgent(), Tool{Server: "search", Name: "query"}, `{}`)

	tests := []struct {
		name     string
		req      Request
		allow    bool
		code     Code
		policies []string
	}{
		{"permit by scope and condition", call(financeAgent(), searchTool, `{"q": "invoices"}`), true, CodePermit, []string{"read-only-tools"}},
		{"permit by group and argument", call(financeAgent(), payTool, `{"amount": 1000}`), true, CodePermit, []string{"finance-payments"}},
		{"argument over the limit: no permit", call(financeAgent(), payTool, `{"amount": 1001}`), false, CodeNoPermit, nil},
		{"decimal argument against a Long limit: error denies", call(financeAgent(), payTool, `{"amount": 10.5}`), false, CodeError, []string{"finance-payments"}},
		{"argument of the wrong type: error denies", call(financeAgent(), payTool, `{"amount": "10"}`), false, CodeError, []string{"finance-payments"}},
		{"missing argument: no permit", call(financeAgent(), payTool, `{}`), false, CodeNoPermit, nil},
		{"outside the group: no permit", call(support, payTool, `{"amount": 10}`), false, CodeNoPermit, nil},
		{"path argument allowed", call(support, writeTool, `{"path": "/data/x.txt"}`), true, CodePermit, []string{"files-under-data"}},
		{"path argument outside", call(support, writeTool, `{"path": "/etc/passwd"}`), false, CodeNoPermit, nil},
		{"path traversal", call(support, writeTool, `{"path": "/data/../etc/passwd"}`), false, CodeNoPermit, nil},
		{"agent label (tag) permits", call(support, mailTool, `{"to": "bob@example.com"}`), true, CodePermit, []string{"support-mail"}},
		{"agent label (tag) missing", call(financeAgent(), mailTool, `{"to": "bob@example.com"}`), false, CodeNoPermit, nil},
		{"forbid overrides permit: taint", tainted, false, CodeForbid, []string{"no-egress-when-tainted"}},
		{"forbid overrides permit: findings", injected, false, CodeForbid, []string{"stop-after-injection"}},
		{"forbid on task intent", summary, false, CodeForbid, []string{"summaries-never-write"}},
		{"forbid by unless", unknownModel, false, CodeForbid, []string{"no-untrusted-model"}},
		{"forbid on tier and labels", call(foundation, wipeTool, `{}`), false, CodeForbid, []string{"no-destructive-at-foundation"}},
		{"unlabelled tool carries every label", unlabelled, false, CodeNoPermit, nil},
		{"memory in namespace", Request{Agent: financeAgent(), Action: Write, Target: Memory{Namespace: "teams/finance/invoices"}, Task: Task{ID: "t"}}, true, CodePermit, []string{"finance-memory"}},
		{"memory outside namespace", Request{Agent: financeAgent(), Action: Write, Target: Memory{Namespace: "teams/hr"}, Task: Task{ID: "t"}}, false, CodeNoPermit, nil},
		{"memory namespace prefix is not a parent", Request{Agent: financeAgent(), Action: Read, Target: Memory{Namespace: "teams/financevery"}, Task: Task{ID: "t"}}, false, CodeNoPermit, nil},
		{"prompt read", Request{Agent: support, Action: Read, Target: Prompt{Server: "docs", Name: "summarise"}, Task: Task{ID: "t"}}, true, CodePermit, []string{"read-prompts"}},
		{"delegate within group", Request{Agent: financeAgent(), Action: Delegate, Target: Agent{Name: "ledger", Groups: []string{"finance"}}, Task: Task{ID: "t"}}, true, CodePermit, []string{"finance-delegation"}},
		{"delegate outside group", Request{Agent: financeAgent(), Action: Delegate, Target: support, Task: Task{ID: "t"}}, false, CodeNoPermit, nil},
		{"malformed arguments", call(financeAgent(), payTool, `{"amount": 1`), false, CodeInvalidRequest, nil},
		{"duplicate argument", call(financeAgent(), payTool, `{"amount": 1, "amount": 5000}`), false, CodeInvalidRequest, nil},
		{"arguments not an object", call(financeAgent(), payTool, `[1]`), false, CodeInvalidRequest, nil},
		{"unknown label", call(financeAgent(), Tool{Server: "a", Name: "b", Labels: []string{"egres"}}, `{}`), false, CodeInvalidRequest, nil},
		{"no agent name", call(Agent{}, searchTool, `{}`), false, CodeInvalidRequest, nil},
		{"no task", Request{Agent: financeAgent(), Action: Call, Target: searchTool}, false, CodeInvalidRequest, nil},
		{"no target", Request{Agent: financeAgent(), Action: Call, Task: Task{ID: "t"}}, false, CodeInvalidRequest, nil},
		{"nil pointer target", Request{Agent: financeAgent(), Action: Call, Target: (*Tool)(nil), Task: Task{ID: "t"}}, false, CodeInvalidRequest, nil},
		{"pointer target", Request{Agent: financeAgent(), Action: Call, Target: &searchTool, Task: Task{ID: "t"}}, true, CodePermit, []string{"read-only-tools"}},
		{"action does not apply to target", Request{Agent: financeAgent(), Action: Call, Target: Memory{Namespace: "x"}, Task: Task{ID: "t"}}, false, CodeInvalidRequest, nil},
		{"unknown action", Request{Agent: financeAgent(), Action: "execute", Target: searchTool, Task: Task{ID: "t"}}, false, CodeInvalidRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, eng := range []*Engine{e, newEngine(e.set, true)} {
				d := eng.Decide(context.Background(), tt.req)
				if d.Allow != tt.allow || d.Code != tt.code {
					t.Fatalf("got %v; want allow=%v code %s", d, tt.allow, tt.code)
				}
				if got := d.Policies(); !slices.Equal(got, tt.policies) {
					t.Errorf("policies %q, want %q (%v)", got, tt.policies, d)
				}
				if len(d.Reasons) == 0 {
					t.Error("no reasons")
				}
				if d.Digest != e.set.Digest() || d.File != "warden.cedar" {
					t.Errorf("decision not stamped with the set: %+v", d)
				}
			}
		})
	}
}

func TestDecideReasonsCarryAnnotationsAndPositions(t *testing.T) {
	e := NewEngine(exampleSet(t))
	req := call(financeAgent(), payTool, `{"amount": 10}`)
	req.Session.Tainted = true
	req.Session.Findings = []string{"injection"}
	d := e.Decide(context.Background(), req)
	if d.Code != CodeForbid || !slices.Equal(d.Policies(), []string{"no-egress-when-tainted", "stop-after-injection"}) {
		t.Fatalf("%v", d)
	}
	r := d.Reasons[0]
	if r.Effect != Forbid || !strings.HasPrefix(r.Position, "warden.cedar:") || !strings.Contains(r.Message, "untrusted content") {
		t.Errorf("reason %+v", r)
	}
}

func TestForbidAlsoReportsErrors(t *testing.T) {
	set := mustCompile(t, `
@id("f") forbid(principal, action, resource) when { context.session.tainted };
@id("e") permit(principal, action, resource) when { context.args.n > 1 };`)
	req := call(financeAgent(), searchTool, `{"n": "x"}`)
	req.Session.Tainted = true
	d := NewEngine(set).Decide(context.Background(), req)
	if d.Code != CodeForbid || !slices.Equal(d.Policies(), []string{"f", "e"}) {
		t.Fatalf("%v %v", d, d.Policies())
	}
}

func TestUnavailableDenies(t *testing.T) {
	req := call(financeAgent(), searchTool, `{}`)
	var nilEngine *Engine
	for name, e := range map[string]*Engine{
		"nil engine":    nilEngine,
		"nil set":       NewEngine(nil),
		"store failure": unavailableEngine(errors.New("database is locked")),
	} {
		for _, d := range []Decision{e.Decide(context.Background(), req), e.Precheck(context.Background(), req)} {
			if d.Allow || d.Code != CodeUnavailable || len(d.Reasons) == 0 {
				t.Errorf("%s: %v", name, d)
			}
		}
		if e.Err() == nil {
			t.Errorf("%s: Err() is nil", name)
		}
	}
}

func TestCanceledContextDenies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := NewEngine(exampleSet(t)).Decide(ctx, call(financeAgent(), searchTool, `{}`))
	if d.Allow || d.Code != CodeError {
		t.Fatalf("%v", d)
	}
}

func TestEmptySetDeniesEverything(t *testing.T) {
	d := NewEngine(mustCompile(t, "")).Decide(context.Background(), call(financeAgent(), searchTool, `{}`))
	if d.Allow || d.Code != CodeNoPermit {
		t.Fatalf("%v", d)
	}
}

func mustCompile(t testing.TB, src string) *Set {
	t.Helper()
	set, err := Compile("test.cedar", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestEntityCacheNeverStale changes an agent's and a tool's attributes,
// including in place in maps and slices the caller keeps, between
// decisions: each decision must see the attributes it was given.
func TestEntityCacheNeverStale(t *testing.T) {
	e := NewEngine(exampleSet(t))
	ctx := context.Background()
	a := financeAgent()
	a.Labels = map[string]string{"team": "support"}
	req := call(a, mailTool, `{"to": "x@example.com"}`)
	if d := e.Decide(ctx, req); !d.Allow {
		t.Fatalf("support label: %v", d)
	}
	a.Labels["team"] = "finance" // the same map, changed in place
	if d := e.Decide(ctx, req); d.Allow {
		t.Fatalf("label changed in place, decision did not: %v", d)
	}
	a.Labels["team"] = "support"
	req.Agent.Tier = "foundation"
	req.Target = wipeTool
	if d := e.Decide(ctx, req); d.Code != CodeForbid {
		t.Fatalf("tier changed: %v", d)
	}
	labels := []string{LabelReads}
	req.Agent.Tier = "advanced"
	req.Target = Tool{Server: "files", Name: "wipe", Labels: labels}
	if d := e.Decide(ctx, req); !d.Allow {
		t.Fatalf("relabelled tool: %v", d)
	}
	labels[0] = LabelDestructive // the same slice, changed in place
	if d := e.Decide(ctx, req); d.Allow {
		t.Fatalf("label slice changed in place, decision did not: %v", d)
	}
	findings := []string{"pii"}
	req.Target = searchTool
	req.Session = Session{ID: "s-1", Findings: findings}
	if d := e.Decide(ctx, req); !d.Allow {
		t.Fatalf("session with a pii finding: %v", d)
	}
	findings[0] = "injection" // the same slice, changed in place
	if d := e.Decide(ctx, req); d.Code != CodeForbid {
		t.Fatalf("session finding changed in place, decision did not: %v", d)
	}
	req.Session = Session{ID: "s-1"}
	req.Task.Intent = "summarise"
	req.Target = writeTool
	req.Args = []byte(`{"path": "/data/x"}`)
	if d := e.Decide(ctx, req); d.Code != CodeForbid {
		t.Fatalf("task intent changed: %v", d)
	}
}
