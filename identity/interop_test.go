package identity

import (
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warden-run/warden/tier"
)

// Warden's SVIDs and bundle must be standard: go-spiffe, the SPIFFE
// project's own library, verifies them from nothing but the bundle document
// Warden serves.
func TestGoSPIFFEVerifiesWardenSVIDs(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	key, chain := e.enrol(t, "billing-bot")
	caller, err := e.svc.Verifier().VerifyX509(chain)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := e.svc.MintJWTSVID(ctx, caller, []string{"payments-gateway"}, 0)
	if err != nil {
		t.Fatal(err)
	}

	served, err := NewBundle(ctx, e.db, e.td, []*x509.Certificate{e.ca.Root()}, e.svc.JWTKeys())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := served.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(doc, &raw); err != nil || raw["spiffe_sequence"] != float64(1) {
		t.Fatalf("bundle document lacks spiffe_sequence 1: %s", doc)
	}
	bundle, err := spiffebundle.Parse(e.td, doc)
	if err != nil {
		t.Fatalf("go-spiffe cannot parse Warden's bundle: %v", err)
	}

	id, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(e.clock.now()))
	if err != nil {
		t.Fatalf("go-spiffe refuses Warden's X.509-SVID: %v", err)
	}
	if id.String() != "spiffe://example.org/agent/billing-bot" {
		t.Fatalf("go-spiffe read %s", id)
	}
	// go-spiffe's parser applies the X.509-SVID profile to leaf and key.
	svid, err := x509svid.ParseRaw(rawChain(chain), mustPKCS8(t, key))
	if err != nil || svid.ID != id {
		t.Fatalf("go-spiffe cannot parse the SVID with its key: %v", err)
	}

	js, err := jwtsvid.ParseAndValidate(token, bundle, []string{"payments-gateway"})
	if err != nil {
		t.Fatalf("go-spiffe refuses Warden's JWT-SVID: %v", err)
	}
	if js.ID != id || js.Expiry.Sub(e.clock.now()) != 5*time.Minute {
		t.Fatalf("go-spiffe read JWT-SVID %s expiring %s", js.ID, js.Expiry)
	}
	att, ok := js.Claims["attestation"].(map[string]any)
	if !ok || att["owner"].(map[string]any)["source"] != "asserted" {
		t.Fatalf("attestation claims missing from the JWT-SVID: %v", js.Claims)
	}
	if _, err := jwtsvid.ParseAndValidate(token, bundle, []string{"someone-else"}); err == nil {
		t.Fatal("go-spiffe accepted the JWT-SVID for another audience")
	}

	// Rotating a key changes the bundle; the sequence number must rise.
	again, err := NewBundle(ctx, e.db, e.td, []*x509.Certificate{e.ca.Root(), newCA(t, e.td, e.clock.now()).Root()}, e.svc.JWTKeys())
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := again.SequenceNumber(); seq != 2 {
		t.Fatalf("sequence after a root was added = %d, want 2", seq)
	}
}

func rawChain(chain []*x509.Certificate) []byte {
	var b []byte
	for _, c := range chain {
		b = append(b, c.Raw...)
	}
	return b
}

func mustPKCS8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
