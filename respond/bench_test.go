package respond

import (
	"fmt"
	"testing"
	"time"

	"github.com/warden-run/warden/events"
)

// mixedTraffic is a stream shaped like a busy gateway's: mostly allowed
// calls, some refusals, inspection findings, sandbox egress, spread over
// agents and tasks.
func mixedTraffic(n int) []events.Event {
	tools := []string{"files.read", "email.send", "web.fetch", "files.write", "db.query"}
	out := make([]events.Event, n)
	for i := range out {
		agent := fmt.Sprintf("spiffe://example.org/agent/a%d", i%200)
		task := fmt.Sprintf("t%d", i%2000)
		x := ev{at: time.Duration(i) * 100 * time.Microsecond, agent: agent, task: task, tool: tools[i%len(tools)], reason: "allow"}
		switch {
		case i%20 == 7:
			x.reason = "tool_not_granted"
		case i%50 == 13:
			x.class, x.kind, x.reason = events.ClassDetectionFinding, "prompt_injection", "injection_classifier"
		case i%100 == 21:
			x.feat, x.reason, x.attrs = "sandbox", "egress_allowed", map[string]string{"host": fmt.Sprintf("h%d.example", i%300)}
		}
		out[i] = x.event()
	}
	return out
}

// BenchmarkEvaluateBuiltin is rule evaluation with the built-in pack on one
// core: events/s is the figure docs/benchmarks.md reports.
func BenchmarkEvaluateBuiltin(b *testing.B) {
	rs := builtinRules(b)
	evs := mixedTraffic(100_000)
	e := newEvaluator(rs, labelsOf, 0, slogDiscard())
	var out []Alert
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		ev.Metadata.UID = "" // every lap is new events, not duplicates
		out = e.process(&ev, out[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEmit is the cost Emit adds to the emitter's path (the gateway's
// call path): queueing only.
func BenchmarkEmit(b *testing.B) {
	f := &fakes{}
	e, _ := startEngine(b, f, engineOpts{rules: builtinYAML(b), queue: 1 << 16, budget: -1})
	evs := mixedTraffic(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = e.Emit(ctx, evs[i%len(evs)])
	}
}
