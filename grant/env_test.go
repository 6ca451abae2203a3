package grant

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/store"
	"github.com/warden-run/warden/tier"
)

var ctx = context.Background()

// clock is the services' clock in tests: it stands still unless moved with
// add, or moves by step at every reading once tick has set one.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}
func (c *clock) add(d time.Duration)  { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func (c *clock) tick(d time.Duration) { c.mu.Lock(); c.step = d; c.mu.Unlock() }

// agent is a registered, enrolled agent with its key.
type agent struct {
	rec *identity.Record
	key *ecdsa.PrivateKey
}

// caller is the agent as identity verified it over mTLS.
func (a *agent) caller() *identity.Caller {
	return &identity.Caller{ID: a.rec.ID, Role: identity.RoleAgent, Name: a.rec.Name, Method: "x509-svid", KeyThumbprint: a.rec.KeyThumbprint, Record: a.rec}
}

type env struct {
	svc   *Service
	db    *store.DB
	key   ed25519.PrivateKey
	clock *clock
	sink  *events.Recorder
	td    spiffeid.TrustDomain
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	e := &env{db: db, key: key, clock: &clock{t: time.Now().Truncate(time.Second)}, sink: &events.Recorder{}, td: spiffeid.RequireTrustDomainFromString("example.org")}
	e.svc = e.open(t, nil)
	return e
}

// open builds a service over the env's database (a restart, when called again).
func (e *env) open(t testing.TB, pol Policy) *Service {
	t.Helper()
	s, err := NewService(ctx, Settings{TrustDomain: e.td, Tier: tier.Foundation}, e.db, e.key, pol, e.sink, nil, e.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func newAgent(t testing.TB, name string) *agent {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt, err := identity.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://example.org/agent/" + name)
	return &agent{key: k, rec: &identity.Record{ID: id, Role: identity.RoleAgent, Name: name, Owner: "o@example.org", Model: "m",
		Tier: tier.Foundation, Status: identity.StatusActive, KeyThumbprint: jkt}}
}

func scope(t testing.TB, js string) Scope {
	t.Helper()
	var s Scope
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) grant(t testing.TB, a *agent, js string, budget, depth int) (*Task, string) {
	t.Helper()
	task, tok, err := e.svc.Open(ctx, OpenRequest{Grantee: a.rec, Requester: "spiffe://example.org/admin/op", Intent: "test task",
		Scope: scope(t, js), Budget: budget, Delegation: depth})
	if err != nil {
		t.Fatal(err)
	}
	return task, tok
}

// call checks and reserves a call over mTLS.
func (e *env) call(a *agent, tok, tool, args string) error {
	return e.callWith(e.svc, Call{Agent: a.caller(), Token: tok, Tool: tool, Args: json.RawMessage(args), MTLS: true})
}

func (e *env) callWith(s *Service, c Call) error {
	ch, err := s.Check(ctx, c)
	if err != nil {
		return err
	}
	return s.Reserve(ctx, ch)
}

func wantCode(t testing.TB, err error, code Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("allowed; want refusal %s", code)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("refused with %s (%v); want %s", got, err, code)
	}
}

// forge signs arbitrary claims with key under the given header type.
func forge(t testing.TB, key any, alg jose.SignatureAlgorithm, kid, typ string, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dpop makes a DPoP proof with key for method and url, bound to token.
func dpop(t testing.TB, key crypto.Signer, method, url, token string, iat time.Time, jti string) string {
	t.Helper()
	alg := jose.ES256
	if _, ok := key.(ed25519.PrivateKey); ok {
		alg = jose.EdDSA
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(DPoPType))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	payload, _ := json.Marshal(map[string]any{"jti": jti, "htm": method, "htu": url, "iat": iat.Unix(), "ath": b64(sum[:])})
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
