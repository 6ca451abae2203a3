package respond

import (
	"slices"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
)

const (
	s = time.Second
	m = time.Minute
)

func deny(at time.Duration, agent, tool string) ev {
	return ev{at: at, agent: agent, task: "t1", tool: tool, reason: "tool_not_granted"}
}

func allow(at time.Duration, agent, task, tool string) ev {
	return ev{at: at, agent: agent, task: task, tool: tool, reason: "allow"}
}

// Conditions, windows, sequences and suppression, rule by rule: which
// events make the rule fire, and how often.
func TestRules(t *testing.T) {
	cases := []struct {
		name  string
		rule  string
		evs   []ev
		fires int
		check func(t *testing.T, as []Alert)
	}{
		{
			name:  "single condition fires on each match",
			rule:  `{id: r, condition: 'reason == "tool_not_granted"'}`,
			evs:   []ev{deny(0, agentA, "x.y"), allow(s, agentA, "t1", "x.y"), deny(2*s, agentA, "x.z")},
			fires: 2,
		},
		{
			name:  "single condition on attrs with has()",
			rule:  `{id: r, condition: 'has(attrs.host) && attrs.host.endsWith(".evil.test")'}`,
			evs:   []ev{{reason: "egress_allowed", attrs: map[string]string{"host": "a.evil.test"}}, {reason: "egress_allowed"}, {attrs: map[string]string{"host": "ok.test"}}},
			fires: 1,
		},
		{
			name:  "single condition suppressed per agent and task",
			rule:  `{id: r, condition: 'reason == "tool_not_granted"', suppress: 1m}`,
			evs:   []ev{deny(0, agentA, "x.y"), deny(s, agentA, "x.y"), deny(2*s, agentB, "x.y"), deny(61*s, agentA, "x.y")},
			fires: 3,
		},
		{
			name: "event_count gte within the window",
			rule: `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 30s, condition: {gte: 3}}}`,
			evs:  []ev{deny(0, agentA, "x.y"), deny(10*s, agentA, "x.y"), deny(20*s, agentA, "x.y")},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Value != 3 || as[0].Key != "agent="+agentA {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name:  "event_count: events older than the timespan leave the window",
			rule:  `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 30s, condition: {gte: 3}}}`,
			evs:   []ev{deny(0, agentA, "x.y"), deny(20*s, agentA, "x.y"), deny(31*s, agentA, "x.y"), deny(52*s, agentA, "x.y")},
			fires: 0,
		},
		{
			name:  "event_count: gt is strict",
			rule:  `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 1m, condition: {gt: 2}}}`,
			evs:   []ev{deny(0, agentA, "x.y"), deny(s, agentA, "x.y")},
			fires: 0,
		},
		{
			name: "event_count: groups are separate",
			rule: `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 1m, condition: {gte: 2}}}`,
			evs:  []ev{deny(0, agentA, "x.y"), deny(s, agentB, "x.y"), deny(2*s, agentB, "x.y")},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Agent != agentB {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name:  "event_count: an event without the group-by value is not counted",
			rule:  `{id: r, condition: 'true', correlation: {type: event_count, group-by: [task], timespan: 1m, condition: {gte: 2}}}`,
			evs:   []ev{{at: 0}, {at: s}, {at: 2 * s}},
			fires: 0,
		},
		{
			name: "event_count: group-by over two keys",
			rule: `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent, tool], timespan: 1m, condition: {gte: 2}}}`,
			evs:  []ev{deny(0, agentA, "x.y"), deny(s, agentA, "x.z"), deny(2*s, agentA, "x.y")},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Key != "agent="+agentA+",tool=x.y" {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name:  "event_count: fires again only after suppression",
			rule:  `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 10s, condition: {gte: 2}}, suppress: 1m}`,
			evs:   []ev{deny(0, agentA, "x"), deny(s, agentA, "x"), deny(2*s, agentA, "x"), deny(3*s, agentA, "x"), deny(70*s, agentA, "x"), deny(71*s, agentA, "x")},
			fires: 2,
		},
		{
			name:  "event_count: suppress 0s refires every time the threshold is crossed again",
			rule:  `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 10s, condition: {gte: 2}}, suppress: 0s}`,
			evs:   []ev{deny(0, agentA, "x"), deny(s, agentA, "x"), deny(2*s, agentA, "x"), deny(3*s, agentA, "x")},
			fires: 2,
		},
		{
			name: "value_count counts distinct values",
			rule: `{id: r, condition: 'reason == "tool_not_granted"', correlation: {type: value_count, group-by: [agent], timespan: 1m, condition: {gte: 3, field: tool}}}`,
			evs:  []ev{deny(0, agentA, "a.x"), deny(s, agentA, "a.x"), deny(2*s, agentA, "a.y"), deny(3*s, agentA, "a.y"), deny(4*s, agentA, "a.z")},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Value != 3 || as[0].Tool != "a.z" {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name:  "value_count: old values leave the window",
			rule:  `{id: r, condition: 'reason == "tool_not_granted"', correlation: {type: value_count, group-by: [agent], timespan: 10s, condition: {gte: 3, field: tool}}}`,
			evs:   []ev{deny(0, agentA, "a.x"), deny(9*s, agentA, "a.y"), deny(15*s, agentA, "a.z")},
			fires: 0,
		},
		{
			name: "value_sum over a string attribute",
			rule: `{id: r, condition: 'has(attrs.bytes)', correlation: {type: value_sum, group-by: [task], timespan: 10m, field: attrs.bytes, condition: {gt: 1048576}}}`,
			evs: []ev{
				{at: 0, task: "t1", attrs: map[string]string{"bytes": "600000"}},
				{at: m, task: "t2", attrs: map[string]string{"bytes": "600000"}},
				{at: 2 * m, task: "t1", attrs: map[string]string{"bytes": "500000"}},
			},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Task != "t1" || as[0].Value != 1100000 {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name: "value_sum: a non-numeric value is a runtime error, skipped",
			rule: `{id: r, condition: 'has(attrs.bytes)', correlation: {type: value_sum, group-by: [task], timespan: 10m, field: attrs.bytes, condition: {gte: 10}}}`,
			evs: []ev{
				{at: 0, task: "t1", attrs: map[string]string{"bytes": "lots"}},
				{at: s, task: "t1", attrs: map[string]string{"bytes": "10"}},
			},
			fires: 1,
		},
		{
			name: "new_value fires on a value the group has not shown within the timespan",
			rule: `{id: r, condition: 'has(attrs.host)', correlation: {type: new_value, group-by: [tool], timespan: 1h, field: attrs.host}}`,
			evs: []ev{
				{at: 0, tool: "web.fetch", attrs: map[string]string{"host": "a.test"}},
				{at: m, tool: "web.fetch", attrs: map[string]string{"host": "a.test"}},
				{at: 2 * m, tool: "web.fetch", attrs: map[string]string{"host": "b.test"}},
				{at: 3 * m, tool: "other.x", attrs: map[string]string{"host": "a.test"}},
				{at: 2 * time.Hour, tool: "web.fetch", attrs: map[string]string{"host": "a.test"}},
			},
			fires: 4, // a at 0, b, a for other.x, a again after an hour away
		},
		{
			name: "sequence: A then B within maxspan",
			rule: `{id: r, sequence: {by: [agent], maxspan: 5m, steps: [{condition: 'class_uid == 2004 && "prompt_injection" in finding_types'}, {condition: 'reason == "allow" && "egress" in labels'}]}}`,
			evs: []ev{
				allow(0, agentA, "t1", "email.send"), // B before A: nothing
				{at: s, class: events.ClassDetectionFinding, agent: agentA, task: "t1", kind: "prompt_injection"},
				allow(2*s, agentA, "t1", "files.read"), // not sensitive
				allow(3*s, agentB, "t1", "email.send"), // another agent
				allow(4*s, agentA, "t1", "email.send"),
			},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Agent != agentA || as[0].Tool != "email.send" || as[0].Kind != KindSequence {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name: "sequence: B after maxspan does not complete it",
			rule: `{id: r, sequence: {by: [agent], maxspan: 5m, steps: [{condition: '"prompt_injection" in finding_types'}, {condition: 'reason == "allow"'}]}}`,
			evs: []ev{
				{at: 0, class: events.ClassDetectionFinding, agent: agentA, kind: "prompt_injection"},
				allow(6*m, agentA, "t1", "email.send"),
			},
			fires: 0,
		},
		{
			name: "sequence: a later start keeps the sequence alive",
			rule: `{id: r, sequence: {by: [agent], maxspan: 5m, steps: [{condition: '"prompt_injection" in finding_types'}, {condition: 'reason == "allow"'}]}}`,
			evs: []ev{
				{at: 0, class: events.ClassDetectionFinding, agent: agentA, kind: "prompt_injection"},
				{at: 4 * m, class: events.ClassDetectionFinding, agent: agentA, kind: "prompt_injection"},
				allow(6*m, agentA, "t1", "email.send"),
			},
			fires: 1,
		},
		{
			name: "sequence: three steps in order only",
			rule: `{id: r, sequence: {by: [agent], maxspan: 1m, steps: [{condition: 'reason == "a"'}, {condition: 'reason == "b"'}, {condition: 'reason == "c"'}]}}`,
			evs: []ev{
				{at: 0, agent: agentA, reason: "a"}, {at: s, agent: agentA, reason: "c"}, {at: 2 * s, agent: agentA, reason: "b"},
				{at: 3 * s, agent: agentA, reason: "c"},
			},
			fires: 1,
		},
		{
			name: "sequence: one event advances one step only",
			rule: `{id: r, sequence: {by: [agent], maxspan: 1m, steps: [{condition: 'reason == "x"'}, {condition: 'reason == "x"'}]}}`,
			evs:  []ev{{at: 0, agent: agentA, reason: "x"}, {at: s, agent: agentA, reason: "x"}},
			check: func(t *testing.T, as []Alert) {
				if len(as) != 1 || as[0].Time.UnixMilli() != base+1000 {
					t.Fatalf("alerts %+v", as)
				}
			},
		},
		{
			name: "sequence: until resets",
			rule: `{id: r, sequence: {by: [agent], maxspan: 5m, until: 'reason == "task_completed"', steps: [{condition: 'reason == "a"'}, {condition: 'reason == "b"'}]}}`,
			evs:  []ev{{at: 0, agent: agentA, reason: "a"}, {at: s, agent: agentA, reason: "task_completed"}, {at: 2 * s, agent: agentA, reason: "b"}},
		},
		{
			name:  "duplicate event ids count once",
			rule:  `{id: r, condition: 'reason != "allow"', correlation: {type: event_count, group-by: [agent], timespan: 1m, condition: {gte: 2}}}`,
			evs:   []ev{{at: 0, agent: agentA, reason: "x", uid: "e1"}, {at: s, agent: agentA, reason: "x", uid: "e1"}},
			fires: 0,
		},
		{
			name:  "labels fail closed for an unknown tool",
			rule:  `{id: r, condition: 'reason == "allow" && "destructive" in labels'}`,
			evs:   []ev{allow(0, agentA, "t1", "files.read"), allow(s, agentA, "t1", "unknown.tool")},
			fires: 1,
		},
		{
			name:  "respond's own events are never re-detected",
			rule:  `{id: r, condition: 'true'}`,
			evs:   []ev{{feat: "respond", agent: agentA}, {feat: "authz", agent: agentA}},
			fires: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as := replay(compileYAML(t, c.rule), c.evs)
			if c.check != nil {
				c.check(t, as)
				return
			}
			if len(as) != c.fires {
				t.Fatalf("fired %d times, want %d: %+v", len(as), c.fires, as)
			}
		})
	}
}

// A rule that fails at run time on an event skips it; the others still see it.
func TestRuntimeErrorDoesNotStopOtherRules(t *testing.T) {
	rs := compileYAML(t, `
id: broken
condition: attrs.missing == "x"
---
id: sound
condition: reason == "tool_not_granted"
`)
	e := newEvaluator(rs, nil, 0, slogDiscard())
	var as []Alert
	for i := range 10 {
		evt := deny(time.Duration(i)*s, agentA, "x.y").event()
		as = e.process(&evt, as)
	}
	if got := fired(as); len(got) != 10 || slices.Contains(got, "broken") {
		t.Fatalf("fired %v", got)
	}
	if e.states["broken"].errors != 10 || e.states["sound"].errors != 0 {
		t.Fatalf("errors: broken %d, sound %d", e.states["broken"].errors, e.states["sound"].errors)
	}
}

// An expression that would run away is stopped by the cost limit: a
// runtime error, not a stuck engine.
func TestCostLimitStopsRunawayExpression(t *testing.T) {
	rs := compileYAML(t, `{id: heavy, condition: '[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, message.size() >= 0)))))'}`)
	e := newEvaluator(rs, nil, 0, slogDiscard())
	evt := deny(0, agentA, "x.y").event()
	start := time.Now()
	if as := e.process(&evt, nil); len(as) != 0 {
		t.Fatalf("fired %v", as)
	}
	if e.states["heavy"].errors != 1 {
		t.Fatalf("errors %d, want the cost limit to stop it", e.states["heavy"].errors)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

// Memory stays bounded whatever the stream: groups per rule and entries per
// group are capped.
func TestWindowsAreBounded(t *testing.T) {
	rs := compileYAML(t, `{id: r, condition: 'true', correlation: {type: event_count, group-by: [tool], timespan: 1h, condition: {gte: 1000000}}}`)
	e := newEvaluator(rs, nil, 100, slogDiscard())
	for i := range 5000 {
		evt := ev{at: time.Duration(i) * time.Millisecond, agent: agentA, tool: "t.x" + string(rune('a'+i%26)) + itoa(i%500)}.event()
		e.process(&evt, nil)
	}
	st := e.states["r"]
	if len(st.groups) > 100 {
		t.Fatalf("%d groups, want at most 100", len(st.groups))
	}
	for _, g := range st.groups {
		if len(g.entries) > maxEntries {
			t.Fatalf("%d entries", len(g.entries))
		}
	}
	// one group, many events: entries merge, the total stays right
	rs = compileYAML(t, `{id: r, condition: 'true', correlation: {type: event_count, group-by: [agent], timespan: 1h, condition: {gte: 1000}}}`)
	e = newEvaluator(rs, nil, 100, slogDiscard())
	var as []Alert
	for i := range 1000 {
		evt := ev{at: time.Duration(i) * time.Millisecond, agent: agentA}.event()
		as = e.process(&evt, as)
	}
	if len(as) != 1 || as[0].Value != 1000 {
		t.Fatalf("alerts %+v", as)
	}
	// distinct-value windows: the rule's values are bounded in all
	rs = compileYAML(t, `{id: r, condition: 'true', correlation: {type: new_value, group-by: [tool], timespan: 1d, field: message}}`)
	e = newEvaluator(rs, nil, 0, slogDiscard())
	for i := range 20000 {
		evt := ev{at: time.Duration(i) * time.Millisecond, tool: "t.x" + itoa(i%300)}.event()
		evt.Message = itoa(i)
		e.process(&evt, nil)
	}
	values := 0
	for _, g := range e.states["r"].groups {
		values += len(g.values)
	}
	if values > maxValuesPerRule {
		t.Fatalf("%d values kept", values)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}
