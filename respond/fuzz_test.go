package respond

import (
	"testing"
	"time"

	"github.com/warden-run/warden/events"
)

// FuzzParseRules: whatever a rule file holds, parsing and compiling it
// never panics, and a rule set that compiles evaluates events without
// panicking.
//
//	go test -fuzz FuzzParseRules ./respond
func FuzzParseRules(f *testing.F) {
	src, err := BuiltinSource()
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range src {
		f.Add(b)
	}
	for _, s := range []string{
		"id: r\ncondition: 'true'",
		"id: r\ncondition: reason == \"x\"\ncorrelation: {type: value_sum, group-by: [agent], timespan: 1m, field: attrs.n, condition: {gt: 1}}",
		"id: r\nsequence: {by: [task], maxspan: 1m, until: 'false', steps: [{condition: 'true'}, {condition: 'true'}]}",
		"id: r\ncondition: 'attrs.x.size() > 0'\ncorrelation: {type: new_value, timespan: 1d, field: 'attrs.x + tool'}",
		"playbook: p\nactions: [{type: require_approval, for: 2h}]",
		"--- \n---\n",
		"id: r\ncondition: !!binary aGVsbG8=",
		"&a [*a, *a]",
		"id: r\ncondition: '[1,2,3].all(x, x > 0)'",
	} {
		f.Add([]byte(s))
	}
	evs := []events.Event{
		deny(0, agentA, "x.y").event(),
		ev{at: time.Second, class: events.ClassDetectionFinding, agent: agentA, kind: "prompt_injection", attrs: map[string]string{"x": "1", "n": "2"}}.event(),
		allow(2*time.Second, agentA, "t1", "email.send").event(),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			return
		}
		rs, err := Compile(docs)
		if err != nil {
			return
		}
		e := newEvaluator(rs, labelsOf, 10, slogDiscard())
		for i := range evs {
			x := evs[i]
			e.process(&x, nil)
		}
	})
}
