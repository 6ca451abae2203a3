package grant

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/warden-run/warden/internal/jwsheader"
)

// TokenType is the typ header of a grant. JWT-SVIDs (typ JWT) and DPoP
// proofs (dpop+jwt) are refused as grants before any signature is checked.
const TokenType = "warden-grant+jwt"

var grantAlgs = []jose.SignatureAlgorithm{jose.EdDSA}

// Claims are a grant's claims.
type Claims struct {
	jwt.Claims        // iss (trust domain), sub (agent SPIFFE ID), aud, jti, iat, nbf, exp
	Task       string `json:"task"`
	Intent     string `json:"intent,omitempty"`
	Scope      Scope  `json:"scope"`
	// Egress is the task's allow-list of hosts its calls' arguments may
	// point at (besides the deployment's): inspection blocks any other.
	Egress []string `json:"egress,omitempty"`
	Budget int      `json:"budget"` // calls this grant may make
	Depth  int      `json:"dlg"`    // how many more times it may be delegated
	Cnf    Cnf      `json:"cnf"`
	// Act records, as in RFC 8693 token exchange, who delegated this grant
	// (and who delegated to them): the actor chain.
	Act *Actor `json:"act,omitempty"`
	// Parents are the grants this one was delegated from, parent first.
	// Every one of their scopes and budgets is checked on every call.
	Parents []Link `json:"parents,omitempty"`
}

// Cnf binds a grant to a key: the RFC 7638 thumbprint of the agent's key.
type Cnf struct {
	JKT string `json:"jkt"`
}

// Actor is one link of the RFC 8693 actor chain.
type Actor struct {
	Sub string `json:"sub"`
	Act *Actor `json:"act,omitempty"`
}

// Link is an ancestor grant as its descendants carry it.
type Link struct {
	Task   string `json:"task"`
	JTI    string `json:"jti"`
	Agent  string `json:"sub"`
	Scope  Scope  `json:"scope"`
	Budget int    `json:"budget"`
}

// Grant is a verified grant: its claims with scopes compiled for checking.
// It is immutable and shared between calls.
type Grant struct {
	Claims
	scope   *compiledScope
	parents []*compiledScope // one per Claims.Parents
}

// Expires returns when the grant expires.
func (g *Grant) Expires() time.Time { return g.Expiry.Time() }

// TaskChain returns the grant's task and its ancestors' tasks, own first.
func (g *Grant) TaskChain() []string {
	out := make([]string, 0, 1+len(g.Parents))
	out = append(out, g.Task)
	for _, p := range g.Parents {
		out = append(out, p.Task)
	}
	return out
}

// Authority signs grants with the dedicated grant key (Ed25519).
type Authority struct {
	kid    string
	pub    ed25519.PublicKey
	signer jose.Signer
}

// NewAuthority wraps the grant signing key.
func NewAuthority(key crypto.Signer) (*Authority, error) {
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("grant key must be Ed25519, got %T", key)
	}
	pub := priv.Public().(ed25519.PublicKey)
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	kid := b64(sum)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType(TokenType).WithHeader("kid", kid))
	if err != nil {
		return nil, fmt.Errorf("creating grant signer: %w", err)
	}
	return &Authority{kid: kid, pub: pub, signer: s}, nil
}

// KeyID returns the grant key's id.
func (a *Authority) KeyID() string { return a.kid }

// Public returns the grant verification key.
func (a *Authority) Public() ed25519.PublicKey { return a.pub }

func (a *Authority) sign(c *Claims) (string, error) {
	tok, err := jwt.Signed(a.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing grant: %w", err)
	}
	return tok, nil
}

// Verifier verifies grant tokens and caches what it verified: a signature
// costs tens of microseconds, so a token is verified once and its claims are
// kept, keyed by the token's hash, until it expires. Revocation and budget
// are never cached: they are checked on every call.
type Verifier struct {
	keys     map[string]ed25519.PublicKey
	audience string
	now      func() time.Time

	mu    sync.RWMutex
	cache map[[32]byte]*Grant
}

// maxCached bounds the verified-grant cache; past it, grants are verified
// every time rather than evicting unexpired ones under the lock.
const maxCached = 1 << 16

// NewVerifier returns a verifier for grants signed by keys (by kid) for
// audience.
func NewVerifier(keys map[string]ed25519.PublicKey, audience string, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, audience: audience, now: now, cache: make(map[[32]byte]*Grant)}
}

// Verify checks a grant's type, algorithm, key, signature, audience and
// lifetime, and returns it with its scopes compiled.
func (v *Verifier) Verify(token string) (*Grant, error) {
	if token == "" {
		return nil, errorf(CodeMissing, "no grant presented: open a task to get one")
	}
	h := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.RLock()
	g, ok := v.cache[h]
	v.mu.RUnlock()
	if ok {
		if err := checkTimes(&g.Claims, now); err != nil {
			return nil, err
		}
		return g, nil
	}
	g, err := v.verify(token, now)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if len(v.cache) >= maxCached {
		for k, cg := range v.cache {
			if !now.Before(cg.Expires()) {
				delete(v.cache, k)
			}
		}
	}
	if len(v.cache) < maxCached {
		v.cache[h] = g
	}
	v.mu.Unlock()
	return g, nil
}

func (v *Verifier) verify(token string, now time.Time) (*Grant, error) {
	hdr, err := jwsheader.Parse(token)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "grant is malformed")
	}
	if !slices.Contains(grantAlgs, jose.SignatureAlgorithm(hdr.Alg)) {
		return nil, errorf(CodeAlg, "grant algorithm %q is not allowed (want EdDSA)", hdr.Alg)
	}
	if hdr.Typ != TokenType {
		return nil, errorf(CodeWrongType, "token has typ %q, not a grant (typ %q); a JWT-SVID proves identity, it grants nothing", hdr.Typ, TokenType)
	}
	key, ok := v.keys[hdr.Kid]
	if !ok {
		return nil, errorf(CodeUntrusted, "grant is signed with key %q, which is not this trust domain's grant key", hdr.Kid)
	}
	tok, err := jwt.ParseSigned(token, grantAlgs)
	if err != nil {
		return nil, wrapErr(CodeMalformed, err, "grant is malformed")
	}
	var c Claims
	if err := tok.Claims(key, &c); err != nil {
		return nil, wrapErr(CodeBadSignature, err, "grant signature does not verify")
	}
	if c.Subject == "" || c.ID == "" || c.Task == "" || c.Expiry == nil || c.Cnf.JKT == "" || len(c.Scope) == 0 {
		return nil, errorf(CodeMalformed, "grant lacks a required claim (sub, jti, task, exp, cnf.jkt, scope)")
	}
	if !c.Audience.Contains(v.audience) {
		return nil, errorf(CodeWrongAudience, "grant is for %v, not %q", []string(c.Audience), v.audience)
	}
	if err := checkTimes(&c, now); err != nil {
		return nil, err
	}
	g := &Grant{Claims: c}
	if g.scope, err = compileScope(c.Scope); err != nil {
		return nil, wrapErr(CodeMalformed, err, "grant scope")
	}
	for i, p := range c.Parents {
		ps, err := compileScope(p.Scope)
		if err != nil {
			return nil, wrapErr(CodeMalformed, err, "grant ancestor %d scope", i+1)
		}
		g.parents = append(g.parents, ps)
	}
	return g, nil
}

// clockSkew is how far a grant's iat/nbf may be in the future.
const clockSkew = 30 * time.Second

func checkTimes(c *Claims, now time.Time) error {
	if !now.Before(c.Expiry.Time()) {
		return errorf(CodeExpired, "grant expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil && now.Add(clockSkew).Before(c.NotBefore.Time()) {
		return errorf(CodeNotYetValid, "grant is not valid before %s", c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	return nil
}

// Forget drops every cached verification, so that each grant is verified
// from its signature again (after rotating the grant key, and in benchmarks
// of the cold path).
func (v *Verifier) Forget() {
	v.mu.Lock()
	clear(v.cache)
	v.mu.Unlock()
}
