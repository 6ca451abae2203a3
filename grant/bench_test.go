package grant

import (
	"encoding/json"
	"testing"
)

// BenchmarkVerifyWarm is grant verification with the verified claims cached
// (the design's target: under 5 µs).
func BenchmarkVerifyWarm(b *testing.B) {
	e := newEnv(b)
	_, tok := e.grant(b, newAgent(b, "a"), filesScope, 100, 0)
	v := e.svc.Verifier()
	if _, err := v.Verify(tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold verifies the signature every time.
func BenchmarkVerifyCold(b *testing.B) {
	e := newEnv(b)
	_, tok := e.grant(b, newAgent(b, "a"), filesScope, 100, 0)
	v := e.svc.Verifier()
	b.ReportAllocs()
	for b.Loop() {
		v.Forget()
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckWarm is the whole grant stage of a call: cached
// verification, binding, revocation snapshot, argument decoding and the
// scope's constraints (no budget, no policy).
func BenchmarkCheckWarm(b *testing.B) {
	e := newEnv(b)
	a := newAgent(b, "a")
	_, tok := e.grant(b, a, filesScope, 100, 0)
	c := Call{Agent: a.caller(), Token: tok, Tool: "files.read_file", Args: json.RawMessage(`{"path": "/data/q3.csv"}`), MTLS: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Check(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckWarmUnconstrained is BenchmarkCheckWarm for a tool whose
// grant entry constrains no argument (search.*): the arguments are checked
// to be a JSON object, not decoded.
func BenchmarkCheckWarmUnconstrained(b *testing.B) {
	e := newEnv(b)
	a := newAgent(b, "a")
	_, tok := e.grant(b, a, filesScope, 100, 0)
	c := Call{Agent: a.caller(), Token: tok, Tool: "search.query", Args: json.RawMessage(`{"query": "quarterly invoices", "limit": 10}`), MTLS: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Check(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
