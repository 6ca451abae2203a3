package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

// clock is a settable time source for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	td    spiffeid.TrustDomain
	svc   *Service
	ca    *CA
	db    *store.DB
	clock *clock
	sink  *events.Recorder
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCA makes a root and intermediate for td, valid from now.
func newCA(t testing.TB, td spiffeid.TrustDomain, now time.Time) *CA {
	t.Helper()
	rk, ik := ecKey(t), ecKey(t)
	root, err := NewRoot(td, rk, now)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediate(td, root, rk, ik, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA(td, root, inter, ik)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newEnv(t testing.TB, tr tier.Tier) *env {
	t.Helper()
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	clk := &clock{t: time.Now().Truncate(time.Second)}
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := OpenRegistry(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, td, clk.now())
	ja, err := NewJWTAuthority(td, ecKey(t))
	if err != nil {
		t.Fatal(err)
	}
	p := tier.For(tr)
	sink := &events.Recorder{}
	svc := NewService(Settings{TrustDomain: td, Tier: tr, X509TTL: time.Hour, X509MaxTTL: p.X509SVIDMaxTTL,
		JWTTTL: 5 * time.Minute, JWTMaxTTL: p.JWTSVIDMaxTTL, JoinTokenTTL: p.JoinTokenTTL}, db, reg, ca, ja, sink, nil, clk.now)
	return &env{td: td, svc: svc, ca: ca, db: db, clock: clk, sink: sink}
}

// register registers an agent and returns its join token.
func (e *env) register(t testing.TB, name string) string {
	t.Helper()
	_, tok, err := e.svc.Register(context.Background(), "spiffe://example.org/admin/test",
		Spec{Role: RoleAgent, Name: name, Owner: "ops@example.org", Model: "claude-sonnet"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// csr makes a PEM CSR for key, naming uris as URI SANs.
func csr(t testing.TB, key crypto.Signer, uris ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// enrol registers name, enrols a fresh key and returns key and chain.
func (e *env) enrol(t testing.TB, name string) (*ecdsa.PrivateKey, []*x509.Certificate) {
	t.Helper()
	tok := e.register(t, name)
	k := ecKey(t)
	chain, err := e.svc.Enroll(context.Background(), tok, csr(t, k))
	if err != nil {
		t.Fatal(err)
	}
	return k, chain
}

func wantCode(t testing.TB, err error, code Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("succeeded; want refusal %s", code)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("refused with %s (%v); want %s", got, err, code)
	}
}

func spiffeidTD(t testing.TB, s string) spiffeid.TrustDomain {
	t.Helper()
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return td
}
