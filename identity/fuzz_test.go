package identity

import (
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/tier"
)

// FuzzParseCSR feeds arbitrary bytes to the CSR parser: it must refuse or
// accept cleanly, never panic, and never accept a request for another ID.
func FuzzParseCSR(f *testing.F) {
	want := spiffeid.RequireFromString("spiffe://example.org/agent/a")
	k := ecKey(f)
	f.Add(csr(f, k))
	f.Add(csr(f, k, "spiffe://example.org/agent/b"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCSR(b, want)
		if err != nil {
			if CodeOf(err) == CodeInternal {
				t.Fatalf("refusal without a specific code: %v", err)
			}
			return
		}
		if len(c.URIs) > 1 || len(c.URIs) == 1 && c.URIs[0].String() != want.String() {
			t.Fatalf("accepted a CSR for %v", c.URIs)
		}
	})
}

// FuzzVerifyJWT feeds arbitrary strings to the JWT-SVID verifier: every
// refusal carries a specific code, and nothing but a real token verifies.
func FuzzVerifyJWT(f *testing.F) {
	e := newEnv(f, tier.Foundation)
	_, chain := e.enrol(f, "a")
	caller, _ := e.svc.Verifier().VerifyX509(chain)
	good, _, err := e.svc.MintJWTSVID(ctx, caller, []string{"gw"}, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(strings.Replace(good, ".", "x.", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := e.svc.Verifier().VerifyJWT(tok, "gw")
		if err == nil {
			if tok != good || c.ID != caller.ID {
				t.Fatalf("verified a token that Warden did not issue: %q", tok)
			}
			return
		}
		if CodeOf(err) == CodeInternal {
			t.Fatalf("refusal without a specific code: %v", err)
		}
	})
}
