package gateway_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/gateway"
)

// dpopTransport authenticates like an agent without a client certificate:
// a JWT-SVID in Authorization and, on every request, a fresh DPoP proof
// signed with the agent's key and bound to the grant.
type dpopTransport struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	jwt    string
	grant  string
	url    string
	n      int
	replay string // when set, sent instead of a fresh proof
	next   http.RoundTripper
}

func (d *dpopTransport) proof() string {
	d.n++
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		d.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(d.grant))
	payload, _ := json.Marshal(map[string]any{"jti": time.Now().String() + string(rune(d.n)), "htm": "POST", "htu": d.url, "iat": time.Now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])})
	jws, _ := s.Sign(payload)
	out, _ := jws.CompactSerialize()
	return out
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+d.jwt)
	r.Header.Set(gateway.HeaderGrant, d.grant)
	if r.Method == http.MethodPost {
		p := d.replay
		if p == "" {
			p = d.proof()
		}
		r.Header.Set(gateway.HeaderDPoP, p)
	}
	return d.next.RoundTrip(r)
}

func TestJWTSVIDWithDPoP(t *testing.T) {
	e := start(t, demoUpstreams(t), nil)
	a := e.agent(t, "a")
	_, tok := e.grantFor(t, a, taskScope, 20)
	caller, err := e.d.Identity.Verifier().VerifyX509(x509Chain(a))
	if err != nil {
		t.Fatal(err)
	}
	jwt, _, err := e.d.Identity.MintJWTSVID(ctx, caller, []string{e.gw.Audience()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.roots[0])
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	dt := &dpopTransport{t: t, key: a.key, jwt: jwt, grant: tok, url: e.url, next: base}
	c := mcp.NewClient(&mcp.Implementation{Name: "jwt-agent", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.url, HTTPClient: &http.Client{Transport: dt}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if r := call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`); r.IsError {
		t.Fatalf("JWT-SVID + DPoP call refused: %v", r.Content)
	}
	// A replayed proof is refused.
	dt.replay = dt.proof()
	call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`) // first use of the replayed proof
	if got := decision(t, call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`)); got != "dpop_replayed" {
		t.Fatalf("replayed DPoP proof: %q", got)
	}
	// A proof signed by another key cannot use the grant.
	other := e.agent(t, "b")
	dt.replay, dt.key = "", other.key
	if got := decision(t, call(t, cs, "files.read_file", `{"path": "/finance/ledger.csv"}`)); got != "binding_unproven" {
		t.Fatalf("DPoP proof with another key: %q", got)
	}
}

func x509Chain(a *agentCred) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range a.cert.Certificate {
		c, _ := x509.ParseCertificate(der)
		out = append(out, c)
	}
	return out
}
