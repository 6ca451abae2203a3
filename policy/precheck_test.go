package policy

import (
	"context"
	"slices"
	"testing"
)

func TestPrecheck(t *testing.T) {
	e := NewEngine(exampleSet(t))
	foundation := financeAgent()
	foundation.Tier = "foundation"
	badModel := financeAgent()
	badModel.Model = "homebrew-7b"
	outsider := financeAgent()
	outsider.Groups = nil
	summary := call(financeAgent(), writeTool, "")
	summary.Task.Intent = "summarise the quarter"

	tests := []struct {
		name     string
		req      Request
		allow    bool
		code     Code
		policies []string
	}{
		{"argument-dependent permit is not ruled out", call(financeAgent(), payTool, ""), true, CodePermit, []string{"finance-payments"}},
		{"unconditional permit", call(financeAgent(), searchTool, ""), true, CodePermit, []string{"read-only-tools"}},
		{"forbidden whatever the arguments: tier and labels", call(foundation, wipeTool, ""), false, CodeForbid, []string{"no-destructive-at-foundation"}},
		{"forbidden whatever the arguments: model", call(badModel, searchTool, ""), false, CodeForbid, []string{"no-untrusted-model"}},
		{"forbidden whatever the arguments: task intent", summary, false, CodeForbid, []string{"summaries-never-write"}},
		{"no permit can ever match", call(outsider, payTool, ""), false, CodeNoPermit, nil},
		{"session-dependent forbid does not refuse", call(financeAgent(), mailTool, ""), false, CodeNoPermit, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Arguments and session are ignored: a tainted session with
			// forbidden arguments changes nothing.
			tt.req.Args = []byte(`{"amount": 1e9}`)
			tt.req.Session = Session{Tainted: true, Findings: []string{"injection"}}
			d := e.Precheck(context.Background(), tt.req)
			if d.Allow != tt.allow || d.Code != tt.code {
				t.Fatalf("got %v; want allow=%v %s", d, tt.allow, tt.code)
			}
			if got := d.Policies(); !slices.Equal(got, tt.policies) {
				t.Errorf("policies %q, want %q", got, tt.policies)
			}
		})
	}
}

func TestPrecheckSettlesErrorsAndOrder(t *testing.T) {
	set := mustCompile(t, `
@id("always-errors") permit(principal, action, resource is Tool) when { 9223372036854775807 + 1 > 0 };
@id("guarded") permit(principal, action, resource is Tool) when { context.session.tainted } when { 9223372036854775807 + 1 > 0 };`)
	d := NewEngine(set).Precheck(context.Background(), call(financeAgent(), searchTool, ""))
	if d.Allow || d.Code != CodeError || !slices.Equal(d.Policies(), []string{"always-errors"}) {
		t.Fatalf("%v %v", d, d.Policies())
	}
}

func TestPrecheckInvalidRequest(t *testing.T) {
	d := NewEngine(exampleSet(t)).Precheck(context.Background(), call(financeAgent(), Tool{Server: "x"}, ""))
	if d.Allow || d.Code != CodeInvalidRequest {
		t.Fatalf("%v", d)
	}
}
