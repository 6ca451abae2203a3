package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/tier"
)

var ctx = context.Background()

func TestEnrolmentIssuesAStandardX509SVID(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	key, chain := e.enrol(t, "billing-bot")
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(chain))
	}
	leaf := chain[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/agent/billing-bot" {
		t.Fatalf("URI SANs = %v", leaf.URIs)
	}
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign != 0 || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("leaf has CA powers or lacks digitalSignature: IsCA=%v usage=%v", leaf.IsCA, leaf.KeyUsage)
	}
	if got := leaf.NotAfter.Sub(e.clock.now()); got != time.Hour {
		t.Errorf("lifetime %v, want the 1h default", got)
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		t.Error("certificate is not for the agent's own key")
	}
	c, err := e.svc.Verifier().VerifyX509(chain, RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	att := c.Attestation()
	if c.Name != "billing-bot" || att.Owner != (Claim{"ops@example.org", Asserted}) || att.Model.Source != Asserted ||
		att.RegisteredBy != (Claim{"spiffe://example.org/admin/test", Measured}) {
		t.Errorf("caller = %+v, attestation = %+v", c, att)
	}
	for _, reason := range []string{"registered", "enrolled"} {
		if len(e.sink.Find(reason)) != 1 {
			t.Errorf("no %q event", reason)
		}
	}
}

func TestJoinTokenIsOneTimeAndShortLived(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	tok := e.register(t, "a")

	// A refused enrolment does not use the token up.
	_, err := e.svc.Enroll(ctx, tok, []byte("not a CSR"))
	wantCode(t, err, CodeCSRInvalid)
	if _, err := e.svc.Enroll(ctx, tok, csr(t, ecKey(t))); err != nil {
		t.Fatalf("token was used up by a refused request: %v", err)
	}
	_, err = e.svc.Enroll(ctx, tok, csr(t, ecKey(t)))
	wantCode(t, err, CodeJoinTokenUsed)

	_, err = e.svc.Enroll(ctx, "no-such-token", csr(t, ecKey(t)))
	wantCode(t, err, CodeJoinTokenBad)

	late := e.register(t, "b")
	e.clock.add(tier.For(tier.Foundation).JoinTokenTTL + time.Second)
	_, err = e.svc.Enroll(ctx, late, csr(t, ecKey(t)))
	wantCode(t, err, CodeJoinTokenExpiry)
	if n := len(e.sink.Find(string(CodeJoinTokenExpiry))); n != 1 {
		t.Errorf("%d events for the expired token, want 1", n)
	}
}

func TestCSRIsChecked(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := csr(t, ecKey(t))
	tampered := append([]byte(nil), good...)
	// Flip a byte inside the base64 body (the signature sits at the end).
	tampered[len(tampered)-40] ^= 0x01
	cases := []struct {
		name string
		csr  []byte
		code Code
	}{
		{"empty", nil, CodeCSRInvalid},
		{"garbage", []byte("hello"), CodeCSRInvalid},
		{"certificate instead of CSR", EncodeCerts([]*x509.Certificate{e.ca.Root()}), CodeCSRInvalid},
		{"too large", make([]byte, MaxCSRSize+1), CodeCSRInvalid},
		{"tampered", tampered, CodeCSRInvalid},
		{"weak RSA key", csr(t, weak), CodeCSRInvalid},
		{"another agent's ID", csr(t, ecKey(t), "spiffe://example.org/agent/other"), CodeCSRWrongID},
		{"an admin ID", csr(t, ecKey(t), "spiffe://example.org/admin/admin"), CodeCSRWrongID},
		{"two IDs", csr(t, ecKey(t), "spiffe://example.org/agent/x", "spiffe://example.org/agent/y"), CodeCSRWrongID},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := e.register(t, fmt.Sprintf("agent-%d", i))
			_, err := e.svc.Enroll(ctx, tok, c.csr)
			wantCode(t, err, c.code)
		})
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := e.svc.Enroll(ctx, e.register(t, "ed"), csr(t, edKey)); err != nil {
		t.Errorf("Ed25519 key refused: %v", err)
	}
}

func TestRenewalKeepsTheKey(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	key, chain := e.enrol(t, "a")
	caller, err := e.svc.Verifier().VerifyX509(chain)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.add(30 * time.Minute)
	renewed, err := e.svc.Renew(ctx, caller, csr(t, key))
	if err != nil {
		t.Fatal(err)
	}
	if !renewed[0].NotAfter.After(chain[0].NotAfter) {
		t.Error("renewal did not extend the lifetime")
	}
	c2, err := e.svc.Verifier().VerifyX509(renewed)
	if err != nil || c2.KeyThumbprint != caller.KeyThumbprint {
		t.Fatalf("renewed SVID: %v, thumbprint %s vs %s", err, c2.KeyThumbprint, caller.KeyThumbprint)
	}
	_, err = e.svc.Renew(ctx, caller, csr(t, ecKey(t)))
	wantCode(t, err, CodeKeyChanged)
	_, err = e.svc.Renew(ctx, caller, csr(t, key, "spiffe://example.org/agent/b"))
	wantCode(t, err, CodeCSRWrongID)
}

func TestStatusTakesEffectOnTheNextVerification(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	_, chain := e.enrol(t, "a")
	caller, _ := e.svc.Verifier().VerifyX509(chain)
	tok, _, err := e.svc.MintJWTSVID(ctx, caller, []string{"gw"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	check := func(want Code) {
		t.Helper()
		_, err1 := e.svc.Verifier().VerifyX509(chain)
		_, err2 := e.svc.Verifier().VerifyJWT(tok, "gw")
		if want == "" {
			if err1 != nil || err2 != nil {
				t.Fatalf("verification failed: %v / %v", err1, err2)
			}
			return
		}
		wantCode(t, err1, want)
		wantCode(t, err2, want)
	}
	check("")
	var seen []Status
	e.svc.OnStatusChange(func(_ context.Context, r Record) { seen = append(seen, r.Status) })
	if _, err := e.svc.SetStatus(ctx, "op", RoleAgent, "a", StatusDisabled); err != nil {
		t.Fatal(err)
	}
	check(CodeDisabled)
	if _, err := e.svc.SetStatus(ctx, "op", RoleAgent, "a", StatusActive); err != nil {
		t.Fatal(err)
	}
	check("")
	if _, err := e.svc.SetStatus(ctx, "op", RoleAgent, "a", StatusDeleted); err != nil {
		t.Fatal(err)
	}
	check(CodeDeleted)
	if len(seen) != 3 || seen[0] != StatusDisabled || seen[2] != StatusDeleted {
		t.Errorf("watchers saw %v", seen)
	}
	_, err = e.svc.SetStatus(ctx, "op", RoleAgent, "a", StatusActive)
	wantCode(t, err, CodeDeleted)
	_, _, err = e.svc.Register(ctx, "op", Spec{Role: RoleAgent, Name: "a", Owner: "o@example.org", Model: "m"})
	wantCode(t, err, CodeConflict)
	_, err = e.svc.SetStatus(ctx, "op", RoleAgent, "nobody", StatusDisabled)
	wantCode(t, err, CodeUnknown)
}

func TestReEnrolmentSupersedesTheOldKey(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	_, old := e.enrol(t, "a")
	tok, err := e.svc.NewJoinToken(ctx, "op", "a")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.svc.Enroll(ctx, tok.Token, csr(t, ecKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Verifier().VerifyX509(old)
	wantCode(t, err, CodeSuperseded)
	if _, err := e.svc.Verifier().VerifyX509(fresh); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyX509Refusals(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	_, chain := e.enrol(t, "a")
	foreign := newCA(t, e.td, e.clock.now())
	fk := ecKey(t)
	id, _ := NewID(e.td, RoleAgent, "a")
	foreignChain, err := foreign.IssueX509SVID(id, fk.Public(), time.Hour, e.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	ghostID, _ := NewID(e.td, RoleAgent, "ghost")
	ghost, _ := e.ca.IssueX509SVID(ghostID, fk.Public(), time.Hour, e.clock.now())
	future, _ := e.ca.IssueX509SVID(id, fk.Public(), time.Hour, e.clock.now().Add(time.Hour))
	otherTD := newCA(t, spiffeidTD(t, "evil.example"), e.clock.now())
	evilID, _ := NewID(spiffeidTD(t, "evil.example"), RoleAgent, "a")
	evil, _ := otherTD.IssueX509SVID(evilID, fk.Public(), time.Hour, e.clock.now())

	cases := []struct {
		name  string
		chain []*x509.Certificate
		roles []Role
		code  Code
	}{
		{"no certificate", nil, nil, CodeMalformed},
		{"intermediate only", chain[1:], nil, CodeMalformed},
		{"foreign CA, same trust domain", foreignChain, nil, CodeUntrusted},
		{"other trust domain", evil, nil, CodeUntrusted},
		{"not registered", ghost, nil, CodeUnknown},
		{"not yet valid", future, nil, CodeNotYetValid},
		{"agent on an admin endpoint", chain, []Role{RoleAdmin}, CodeWrongRole},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Verifier().VerifyX509(c.chain, c.roles...)
			wantCode(t, err, c.code)
		})
	}
	e.clock.add(2 * time.Hour)
	_, err = e.svc.Verifier().VerifyX509(chain)
	wantCode(t, err, CodeExpired)
}

func TestVerifyJWTRefusals(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	_, chain := e.enrol(t, "a")
	caller, _ := e.svc.Verifier().VerifyX509(chain)
	good, _, err := e.svc.MintJWTSVID(ctx, caller, []string{"gw", "other"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.Verifier().VerifyJWT(good, "gw")
	if err != nil || c.ID != caller.ID || c.KeyThumbprint != caller.KeyThumbprint || c.Method != "jwt-svid" {
		t.Fatalf("good token: %+v %v", c, err)
	}
	parts := strings.Split(good, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `/agent/a"`, `/agent/b"`, 1))) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	// A token signed with the real JWT-SVID key but typed as a grant: kinds
	// must never be interchangeable, whoever signed them.
	grantTyped := signWith(t, e.svc.jwt.key, e.svc.jwt.kid, "warden-grant+jwt", jose.ES256, caller)
	otherKey := ecKey(t)
	otherKid, _ := Thumbprint(otherKey.Public())
	unknownKey := signWith(t, otherKey, otherKid, "JWT", jose.ES256, caller)
	hmac := signWith(t, []byte("0123456789abcdef0123456789abcdef"), e.svc.jwt.kid, "JWT", jose.HS256, caller)

	cases := []struct {
		name, token, aud string
		code             Code
	}{
		{"empty", "", "gw", CodeMalformed},
		{"not a JWS", "a.b", "gw", CodeMalformed},
		{"tampered claims", forged, "gw", CodeJWTSignature},
		{"alg none", none, "gw", CodeJWTAlg},
		{"HS256 with a guessable secret", hmac, "gw", CodeJWTAlg},
		{"grant typ", grantTyped, "gw", CodeJWTType},
		{"key not in bundle", unknownKey, "gw", CodeUntrusted},
		{"wrong audience", good, "billing", CodeJWTAudience},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Verifier().VerifyJWT(c.token, c.aud)
			wantCode(t, err, c.code)
		})
	}
	e.clock.add(6 * time.Minute)
	_, err = e.svc.Verifier().VerifyJWT(good, "gw")
	wantCode(t, err, CodeExpired)
}

func signWith(t *testing.T, key any, kid, typ string, alg jose.SignatureAlgorithm, c *Caller) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Subject: c.ID.String(), Audience: jwt.Audience{"gw"},
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRegistrationIsValidated(t *testing.T) {
	e := newEnv(t, tier.Advanced)
	long := strings.Repeat("x", 129)
	cases := []struct {
		name string
		sp   Spec
		want string
	}{
		{"bad name", Spec{Name: "a/b"}, "SPIFFE path segment"},
		{"dot name", Spec{Name: ".."}, "SPIFFE path segment"},
		{"long name", Spec{Name: long}, "at most 128"},
		{"no owner", Spec{Name: "n", Owner: ""}, "owner: required"},
		{"owner not email", Spec{Name: "n", Owner: "ops"}, "not an email"},
		{"owner with display name", Spec{Name: "n", Owner: "Ops <ops@example.org>"}, "not an email"},
		{"no model", Spec{Name: "n", Owner: "o@example.org"}, "model: required"},
		{"model with control chars", Spec{Name: "n", Owner: "o@example.org", Model: "a\nb"}, "printable"},
		{"bad digest", Spec{Name: "n", Owner: "o@example.org", Model: "m", CodeDigest: "md5:abc"}, "code digest"},
		{"tier below deployment", Spec{Name: "n", Owner: "o@example.org", Model: "m", Tier: tier.Foundation}, "below the deployment"},
		{"bad label key", Spec{Name: "n", Owner: "o@example.org", Model: "m", Labels: map[string]string{"Bad Key": "v"}}, "label key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.sp.Role = RoleAgent
			_, _, err := e.svc.Register(ctx, "op", c.sp)
			if err == nil || CodeOf(err) != CodeInvalidInput || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want invalid_input mentioning %q", err, c.want)
			}
		})
	}
	recs, _ := e.svc.List(ctx, RoleAgent)
	if len(recs) != 0 {
		t.Fatalf("refused registrations stored %d agents", len(recs))
	}
}

func TestLifetimesFollowTheStricterTier(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	_, tok, err := e.svc.Register(ctx, "op", Spec{Role: RoleAgent, Name: "strict", Owner: "o@example.org", Model: "m", Tier: tier.Optimized})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.ExpiresAt.Sub(e.clock.now()), tier.For(tier.Optimized).JoinTokenTTL; got != want {
		t.Errorf("join token lifetime %v, want optimized ceiling %v", got, want)
	}
	chain, err := e.svc.Enroll(ctx, tok.Token, csr(t, ecKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	caller, _ := e.svc.Verifier().VerifyX509(chain)
	_, _, err = e.svc.MintJWTSVID(ctx, caller, []string{"gw"}, 10*time.Minute)
	wantCode(t, err, CodeInvalidInput) // optimized: at most 5m
	_, exp, err := e.svc.MintJWTSVID(ctx, caller, []string{"gw"}, 0)
	if err != nil || exp.Sub(e.clock.now()) > tier.For(tier.Optimized).JWTSVIDMaxTTL {
		t.Fatalf("default JWT-SVID lifetime exceeds the ceiling: %v %v", exp, err)
	}
}

func TestAChangeThatCannotBeRecordedIsNotMade(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	e.sink.Err = errors.New("disk full")
	_, _, err := e.svc.Register(ctx, "op", Spec{Role: RoleAgent, Name: "a", Owner: "o@example.org", Model: "m"})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	e.sink.Err = nil
	if _, err := e.svc.Get(ctx, RoleAgent, "a"); CodeOf(err) != CodeUnknown {
		t.Fatalf("agent was stored without its record: %v", err)
	}
	e.register(t, "a") // and the name is still free
}

func TestEventsAreOCSFAccountChanges(t *testing.T) {
	e := newEnv(t, tier.Foundation)
	e.register(t, "a")
	ev := e.sink.Find("registered")[0]
	if ev.ClassUID != events.ClassAccountChange || ev.TypeUID != 300101 || ev.User.UID != "spiffe://example.org/agent/a" || ev.Actor.User.UID != "spiffe://example.org/admin/test" {
		t.Fatalf("event = %+v", ev)
	}
}
