package identity

import (
	"crypto/x509"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

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

// BenchmarkVerifyX509SVIDGoSPIFFE is the baseline for BenchmarkVerifyX509SVID:
// go-spiffe's own chain verification alone, without Warden's registry and
// key-binding checks.
func BenchmarkVerifyX509SVIDGoSPIFFE(b *testing.B) {
	e := newEnv(b, tier.Foundation)
	_, chain := e.enrol(b, "a")
	bundle := x509bundle.FromX509Authorities(e.td, []*x509.Certificate{e.ca.Root()})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := x509svid.Verify(chain, bundle); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyJWTSVIDGoSPIFFE is the baseline for BenchmarkVerifyJWTSVID:
// go-spiffe's JWT-SVID validation alone.
func BenchmarkVerifyJWTSVIDGoSPIFFE(b *testing.B) {
	e := newEnv(b, tier.Foundation)
	_, chain := e.enrol(b, "a")
	caller, _ := e.svc.Verifier().VerifyX509(chain)
	tok, _, err := e.svc.MintJWTSVID(ctx, caller, []string{"gw"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	bundle := jwtbundle.FromJWTAuthorities(e.td, e.svc.JWTKeys())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwtsvid.ParseAndValidate(tok, bundle, []string{"gw"}); err != nil {
			b.Fatal(err)
		}
	}
}
