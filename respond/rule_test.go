package respond

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Rule files that must be refused, and why: a mistake in a rule must never
// load as a rule that silently does something else.
func TestRuleFileErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"not yaml", "id: [", "document 1"},
		{"not a mapping", "- a\n- b", "want a mapping"},
		{"unknown key", "id: r\ncondition: 'true'\nthreshold: 5", "field threshold not found"},
		{"no id", "condition: 'true'", "id: required"},
		{"bad id", "id: 'Bad Id'\ncondition: 'true'", "lower-case"},
		{"no condition", "id: r", "condition: required"},
		{"bad level", "id: r\nlevel: urgent\ncondition: 'true'", "level"},
		{"cel syntax", "id: r\ncondition: 'reason =='", "Syntax error"},
		{"cel unknown field", "id: r\ncondition: 'reasn == \"x\"'", "undeclared reference"},
		{"cel not bool", "id: r\ncondition: 'reason'", "want bool"},
		{"cel type error", "id: r\ncondition: 'class_uid == \"6003\"'", "no matching overload"},
		{"unknown correlation", "id: r\ncondition: 'true'\ncorrelation: {type: event_rate, timespan: 1m}", "want event_count"},
		{"temporal is a sequence", "id: r\ncondition: 'true'\ncorrelation: {type: temporal_ordered, timespan: 1m}", "write it as a sequence"},
		{"no timespan", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, condition: {gte: 2}}", "timespan: required"},
		{"bad timespan", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: soon, condition: {gte: 2}}", "not a duration"},
		{"zero timespan", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 0s, condition: {gte: 2}}", "must be positive"},
		{"long timespan", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 90d, condition: {gte: 2}}", "30d"},
		{"no threshold", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 1m}", "condition: required"},
		{"lt", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 1m, condition: {lt: 2}}", "not supported"},
		{"two comparisons", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 1m, condition: {gt: 2, gte: 3}}", "exactly one"},
		{"negative threshold", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 1m, condition: {gte: -1}}", "positive"},
		{"value_count without field", "id: r\ncondition: 'true'\ncorrelation: {type: value_count, timespan: 1m, condition: {gte: 2}}", "needs a field"},
		{"event_count with field", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, timespan: 1m, field: tool, condition: {gte: 2}}", "takes no field"},
		{"value_count too many", "id: r\ncondition: 'true'\ncorrelation: {type: value_count, timespan: 1m, field: tool, condition: {gte: 5000}}", "distinct"},
		{"bad group-by", "id: r\ncondition: 'true'\ncorrelation: {type: event_count, group-by: [agnt], timespan: 1m, condition: {gte: 2}}", "undeclared"},
		{"sequence one step", "id: r\nsequence: {maxspan: 1m, steps: [{condition: 'true'}]}", "at least two"},
		{"sequence and condition", "id: r\ncondition: 'true'\nsequence: {maxspan: 1m, steps: [{condition: 'true'}, {condition: 'true'}]}", "in its steps"},
		{"sequence no maxspan", "id: r\nsequence: {steps: [{condition: 'true'}, {condition: 'true'}]}", "maxspan: required"},
		{"sequence bad step", "id: r\nsequence: {maxspan: 1m, steps: [{condition: 'true'}, {condition: 'tool'}]}", "want bool"},
		{"unknown action", "id: r\ncondition: 'true'\nactions: [nuke]", "want one of"},
		{"action twice", "id: r\ncondition: 'true'\nactions: [notify, notify]", "twice"},
		{"for on the wrong action", "id: r\ncondition: 'true'\nactions: [{type: notify, for: 1h}]", "takes no 'for'"},
		{"playbook and actions", "id: r\ncondition: 'true'\nplaybook: notify-only\nactions: [notify]", "not both"},
		{"undefined playbook", "id: r\ncondition: 'true'\nplaybook: nope", "not defined"},
		{"duplicate id", "id: r\ncondition: 'true'\n---\nid: r\ncondition: 'false'", "already defined"},
		{"empty playbook", "playbook: p\nactions: []", "at least one"},
		{"long expression", "id: r\ncondition: '" + strings.Repeat("true && ", 600) + "true'", "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			docs, err := ParseFile("bad.yaml", []byte(c.yaml))
			if err == nil {
				_, err = Compile(docs)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// An operator's file replaces a built-in rule by id, switches one off, and
// adds its own; compiling reports every error at once.
func TestLayersOverrideBuiltin(t *testing.T) {
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	mine, err := ParseFile("mine.yaml", []byte(`
id: denied-then-retried
condition: reason == "tool_not_granted"
correlation: {type: event_count, group-by: [agent], timespan: 1m, condition: {gte: 10}}
playbook: notify-only
---
id: new-egress-domain
enabled: false
condition: 'true'
---
id: mine
condition: tool == "payments.send" && reason == "allow"
actions: [notify]
`))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(b, mine)
	if err != nil {
		t.Fatal(err)
	}
	if r := rs.Rule("denied-then-retried"); r == nil || r.threshold != 10 || r.Playbook != "notify-only" {
		t.Fatalf("override: %+v", r)
	}
	if rs.Rule("new-egress-domain") != nil || rs.Rule("mine") == nil {
		t.Fatal("disable or addition not applied")
	}
	bad, _ := ParseFile("bad.yaml", []byte("id: a\ncondition: 'nope'\n---\nid: b\ncondition: '1'"))
	_, err = Compile(bad)
	if err == nil || !strings.Contains(err.Error(), `rule "a"`) || !strings.Contains(err.Error(), `rule "b"`) {
		t.Fatalf("want both errors, got %v", err)
	}
}

func TestLoadFilesFromDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("id: a\ncondition: 'true'\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("id: b\ncondition: 'true'\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a rule"), 0o600)
	docs, err := LoadFiles([]string{dir})
	if err != nil || len(docs) != 2 {
		t.Fatalf("%d docs, %v", len(docs), err)
	}
	os.WriteFile(filepath.Join(dir, "big.yaml"), make([]byte, maxFileBytes+1), 0o600)
	if _, err := LoadFiles([]string{dir}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big file: %v", err)
	}
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "5m": 5 * time.Minute, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute, "0s": 0} {
		if got, err := ParseSpan(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "-1m", "31d", "1y", "abc"} {
		if _, err := ParseSpan(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// The class pre-filter must never skip an event a rule would match.
func TestClassPrefilterIsSound(t *testing.T) {
	rs := compileYAML(t, `
id: a
condition: class_uid == 6003 && reason == "x"
---
id: b
condition: reason == "x"
---
id: c
condition: class_uid in [2004, 6003] && reason == "x"
---
id: d
condition: class_uid == 2004 || reason == "x"
---
id: e
condition: class_uid == 2004 && class_uid == 6003
`)
	want := map[int64][]string{6003: {"a", "b", "c", "d"}, 2004: {"b", "c", "d"}, 3002: {"b", "d"}}
	for class, ids := range want {
		var got []string
		for _, r := range rs.candidates(class) {
			got = append(got, r.ID)
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("class %d: candidates %v, want %v", class, got, ids)
		}
	}
}
