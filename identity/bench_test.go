package identity

import (
	"testing"

	"github.com/warden-run/warden/tier"
)

// BenchmarkIssueX509SVID measures signing an X.509-SVID for a key (the CA's
// part of enrolment and renewal; the database write is not included).
func BenchmarkIssueX509SVID(b *testing.B) {
	e := newEnv(b, tier.Foundation)
	k := ecKey(b)
	id, _ := NewID(e.td, RoleAgent, "a")
	now := e.clock.now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.ca.IssueX509SVID(id, k.Public(), 3600e9, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyX509SVID measures full verification of a presented chain:
// chain to the bundle, SVID profile, registry status and key binding.
func BenchmarkVerifyX509SVID(b *testing.B) {
	e := newEnv(b, tier.Foundation)
	_, chain := e.enrol(b, "a")
	v := e.svc.Verifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyX509(chain); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyJWTSVID measures JWT-SVID verification: header checks,
// ES256 signature, claims and registry status.
func BenchmarkVerifyJWTSVID(b *testing.B) {
	e := newEnv(b, tier.Foundation)
	_, chain := e.enrol(b, "a")
	caller, _ := e.svc.Verifier().VerifyX509(chain)
	tok, _, err := e.svc.MintJWTSVID(ctx, caller, []string{"gw"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	v := e.svc.Verifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyJWT(tok, "gw"); err != nil {
			b.Fatal(err)
		}
	}
}
