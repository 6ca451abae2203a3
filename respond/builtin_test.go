package respond

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
)

// Every built-in rule fires on the attack it is for, and stays quiet on the
// ordinary traffic of a well-behaved agent.
func TestBuiltinPack(t *testing.T) {
	rs := builtinRules(t)
	benign := func() []ev {
		var out []ev
		for i := range 40 {
			at := time.Duration(i) * 3 * s
			out = append(out, allow(at, agentA, "t1", "files.read"))
			if i%10 == 0 {
				out = append(out, allow(at+s, agentA, "t1", "email.send"))
			}
		}
		// one refusal, adapted to
		out = append(out, deny(121*s, agentA, "files.delete"))
		out = append(out, ev{at: 122 * s, class: events.ClassDetectionFinding, agent: agentA, task: "t1", kind: "pii"})
		out = append(out, ev{at: 123 * s, agent: agentA, task: "t1", tool: "files.read", reason: "budget_exhausted"})
		out = append(out, ev{at: 124 * s, agent: agentA, task: "t1", tool: "files.read", reason: "budget_exhausted"})
		out = append(out, ev{at: 125 * s, agent: agentA, task: "t1", tool: "files.read", reason: "budget_exhausted"})
		return out
	}
	cases := []struct {
		rule   string
		attack []ev
	}{
		{"denied-then-retried", []ev{
			{at: 0, agent: agentA, task: "t1", tool: "payments.send", reason: "constraint_violated"},
			{at: 20 * s, agent: agentA, task: "t1", tool: "payments.send", reason: "constraint_violated"},
			{at: 40 * s, agent: agentA, task: "t1", tool: "payments.send", reason: "policy_forbid"},
		}},
		{"tool-enumeration", []ev{
			deny(0, agentA, "db.query"), deny(10*s, agentA, "shell.exec"), deny(20*s, agentA, "files.delete"),
			deny(30*s, agentA, "email.send_all"), deny(40*s, agentA, "secrets.get"),
		}},
		{"privilege-escalation", []ev{{at: 0, agent: agentA, task: "t1", reason: "delegation_widening", feat: "grant"}}},
		{"calls-outside-scope", []ev{
			deny(0, agentA, "db.query"), {at: m, agent: agentA, task: "t1", tool: "files.read", reason: "constraint_violated"},
			deny(2*m, agentA, "db.query2"), deny(3*m, agentA, "db.query3"),
			{at: 4 * m, agent: agentA, task: "t1", tool: "files.read", reason: "constraint_violated"},
		}},
		{"injection-then-sensitive-call", []ev{
			allow(0, agentA, "t1", "web.fetch"),
			{at: s, class: events.ClassDetectionFinding, agent: agentA, task: "t1", tool: "web.fetch", kind: "prompt_injection"},
			allow(30*s, agentA, "t1", "email.send"),
			{at: 30 * s, feat: "gateway", agent: agentA, task: "t1", tool: "email.send", reason: "sensitive_call_unvouched"},
		}},
		{"injection-then-sensitive-call", []ev{ // the flow rule caught the injected data on its way out
			{at: 0, class: events.ClassDetectionFinding, agent: agentA, task: "t1", tool: "web.fetch", kind: "prompt_injection"},
			{at: s, class: events.ClassDetectionFinding, agent: agentA, task: "t1", tool: "email.send", kind: "tainted_flow", reason: "taint_heuristic", action: events.ActionDenied},
		}},
		{"secrets-in-arguments", []ev{{at: 0, class: events.ClassDetectionFinding, agent: agentA, task: "t1", tool: "email.send", kind: "secret"}}},
		{"memory-quarantine", []ev{{at: 0, class: events.ClassDetectionFinding, feat: "memory", agent: agentA, task: "t1", kind: "memory_quarantined", reason: "memory_quarantined"}}},
		{"memory-tampered", []ev{{at: 0, class: events.ClassDetectionFinding, feat: "memory", reason: "memory_tampered", attrs: map[string]string{"ns": "shared"}}}},
		{"rug-pull", []ev{{at: 0, feat: "gateway", agent: agentA, task: "t1", tool: "files.read", reason: "tool_quarantined"}}},
		{"unusual-volume-per-task", func() []ev {
			var out []ev
			for i := range 301 {
				out = append(out, allow(time.Duration(i)*500*time.Millisecond, agentA, "t9", "files.read"))
			}
			return out
		}()},
		{"outbound-data-budget", []ev{{at: 0, class: events.ClassDetectionFinding, agent: agentA, task: "t1", kind: "data_volume"}}},
		{"new-egress-domain", []ev{{at: 0, feat: "sandbox", tool: "web", reason: "egress_allowed", attrs: map[string]string{"host": "exfil.example"}}}},
		{"calls-after-task-completed", []ev{{at: 0, agent: agentA, task: "t1", tool: "files.read", reason: "task_completed"}}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.rule] = true
		t.Run(c.rule, func(t *testing.T) {
			if rs.Rule(c.rule) == nil {
				t.Fatalf("no built-in rule %s", c.rule)
			}
			got := fired(replay(rs, c.attack))
			if !slices.Contains(got, c.rule) {
				t.Fatalf("attack fired %v, not %s", got, c.rule)
			}
		})
	}
	for _, r := range rs.Rules {
		if !covered[r.ID] {
			t.Errorf("built-in rule %s has no attack case", r.ID)
		}
	}
	// the sandbox's egress events feed new-egress-domain only: a known
	// host is quiet, so a benign run seeds it first
	if got := fired(replay(rs, benign())); len(got) != 0 {
		t.Fatalf("benign traffic fired %v", got)
	}
}

// After an injection finding, a sensitive call the grant pins in every
// argument, or one a human approved, is what someone accountable chose:
// the gateway records no sensitive_call_unvouched for it, and the task is
// not contained for it.
func TestInjectionThenVouchedCallIsNotContained(t *testing.T) {
	rs := builtinRules(t)
	got := fired(replay(rs, []ev{
		allow(0, agentA, "t1", "web.fetch"),
		{at: time.Second, class: events.ClassDetectionFinding, agent: agentA, task: "t1", tool: "web.fetch", kind: "prompt_injection"},
		allow(2*time.Second, agentA, "t1", "bank.send_money"),
		// the sound rule held it for a human; the heuristic's match was only logged
		{at: 2 * time.Second, class: events.ClassDetectionFinding, agent: agentA, task: "t1", tool: "bank.send_money", kind: "tainted_flow",
			reason: "taint_heuristic", action: events.ActionAllowed},
		{at: 3 * time.Second, feat: "gateway", agent: agentA, task: "t2", tool: "bank.send_money", reason: "sensitive_call_unvouched"}, // another task
	}))
	if slices.Contains(got, "injection-then-sensitive-call") {
		t.Fatalf("fired %v on vouched calls", got)
	}
}

// The seed threats each have a built-in rule.
func TestBuiltinCoversSeedThreats(t *testing.T) {
	rs := builtinRules(t)
	var tags []string
	for _, r := range rs.Rules {
		tags = append(tags, r.Tags...)
		if r.Description == "" || r.Title == r.ID {
			t.Errorf("rule %s lacks a title or description", r.ID)
		}
		if len(r.Actions) == 0 {
			t.Errorf("rule %s has no response", r.ID)
		}
	}
	for _, want := range []string{"denied-retry", "enumeration", "privilege-escalation", "injection", "secrets", "memory-poisoning", "rug-pull", "volume", "egress", "persistence"} {
		if !slices.Contains(tags, want) {
			t.Errorf("no built-in rule tagged %s", want)
		}
	}
	src, err := BuiltinSource()
	if err != nil || len(src) == 0 {
		t.Fatal(err)
	}
	for name, b := range src {
		if !strings.Contains(string(b), "---") {
			t.Errorf("%s holds one document only", name)
		}
	}
}
