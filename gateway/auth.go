package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/identity"
)

// requestAuth is what the HTTP layer proved about one request: who the
// agent is (checked against the registry on this very request) and how it
// proved its key.
type requestAuth struct {
	caller *identity.Caller
	mtls   bool   // the key was proven by this connection's TLS handshake
	grant  string // Warden-Grant
	dpop   string // DPoP proof, for JWT-SVID callers
	method string
	url    string
}

// connState caches, per TLS connection, the verification of the client
// certificate chain: the handshake proved the key once, the chain need not
// be verified again. The identity's status is still checked on every
// request.
type connState struct {
	once sync.Once
	id   spiffeid.ID
	jkt  string
	exp  time.Time
	err  error
}

type connKey struct{}

func withConnState(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{})
}

// authenticateHTTP authenticates every request before the MCP layer sees
// it, and checks that a session is used only by the agent that opened it.
func (g *Gateway) authenticateHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(headerInternal)
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		ra, err := g.authenticate(r)
		if err != nil {
			g.refuse(w, r, err)
			return
		}
		sid := r.Header.Get("Mcp-Session-Id")
		if sid != "" {
			if owner, ok := g.sessions.owner(sid); ok && owner != ra.caller.ID.String() {
				g.refuse(w, r, &identity.Error{Code: identity.CodeWrongRole, Msg: "this MCP session belongs to another agent"})
				return
			}
		}
		key := randomKey()
		g.requests.Store(key, ra)
		defer g.requests.Delete(key)
		r.Header.Set(headerInternal, key)
		if sid != "" && g.serveFastCall(w, r, sid) {
			return
		}
		sw := &sessionWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sid == "" {
			if newSID := sw.Header().Get("Mcp-Session-Id"); newSID != "" {
				g.sessions.claim(newSID, ra.caller.ID.String())
			}
		}
	})
}

// sessionWriter lets the HTTP layer see the session id the MCP layer
// assigns, and passes flushes through (streams).
type sessionWriter struct {
	http.ResponseWriter
}

func (w *sessionWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authenticate proves the caller of one request: by the client certificate
// of the connection (mTLS), or by a JWT-SVID in Authorization: Bearer (then
// possession of the key is proven per call with DPoP).
func (g *Gateway) authenticate(r *http.Request) (*requestAuth, error) {
	ra := &requestAuth{grant: strings.TrimSpace(r.Header.Get(HeaderGrant)), dpop: r.Header.Get(HeaderDPoP), method: r.Method, url: g.url}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		cs, _ := r.Context().Value(connKey{}).(*connState)
		if cs == nil {
			cs = &connState{}
		}
		cs.once.Do(func() {
			cs.id, cs.err = identity.VerifyChain(r.TLS.PeerCertificates, g.roots, time.Now())
			if cs.err == nil {
				cs.jkt, cs.err = identity.Thumbprint(r.TLS.PeerCertificates[0].PublicKey)
				cs.exp = r.TLS.PeerCertificates[0].NotAfter
			}
		})
		if cs.err != nil {
			return nil, cs.err
		}
		if !time.Now().Before(cs.exp) {
			return nil, &identity.Error{Code: identity.CodeExpired, Msg: "client certificate expired during the connection; reconnect with a renewed SVID"}
		}
		c, err := g.verify.Lookup(cs.id, identity.RoleAgent)
		if err != nil {
			return nil, err
		}
		if c.KeyThumbprint != cs.jkt {
			return nil, &identity.Error{Code: identity.CodeSuperseded, Msg: "client certificate is for a key the agent no longer holds"}
		}
		c.Method = "x509-svid"
		ra.caller, ra.mtls = c, true
		return ra, nil
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		return nil, &identity.Error{Code: identity.CodeMalformed, Msg: "authenticate with an X.509-SVID (mTLS) or a JWT-SVID in Authorization: Bearer"}
	}
	c, err := g.jwts.verify(g.verify, strings.TrimSpace(tok), g.audience)
	if err != nil {
		return nil, err
	}
	ra.caller = c
	return ra, nil
}

// refuse answers a request whose caller could not be proven, and records
// why.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, err error) {
	code := identity.CodeOf(err)
	status := http.StatusUnauthorized
	if code == identity.CodeWrongRole || code == identity.CodeDisabled || code == identity.CodeDeleted {
		status = http.StatusForbidden
	}
	e := events.New(events.ClassAuthentication, events.ActivityLogon, "gateway")
	e.StatusID, e.SeverityID = events.StatusFailure, events.SeverityMedium
	e.StatusCode, e.StatusDetail, e.Message = string(code), err.Error(), "agent refused at the gateway"
	e.SrcEndpoint = endpoint(r.RemoteAddr)
	e.Warden = &events.Warden{Reason: string(code)}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) == 1 {
		e.Actor = &events.Actor{User: &events.User{UID: r.TLS.PeerCertificates[0].URIs[0].String()}}
		e.Warden.Agent = e.Actor.User.UID
	}
	if eerr := g.sink.Emit(r.Context(), e); eerr != nil {
		g.log.Error("could not record a refused agent", "err", eerr)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": string(code), "message": err.Error()}})
}

func endpoint(addr string) *events.Endpoint {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return &events.Endpoint{IP: host, Port: p}
}

// jwtCache keeps verified JWT-SVIDs until they expire, so that an ES256
// signature is checked once per token; the identity's status is checked on
// every request regardless.
type jwtCache struct {
	mu sync.Mutex
	m  map[[32]byte]jwtEntry
}

type jwtEntry struct {
	id  spiffeid.ID
	exp time.Time
}

func newJWTCache() *jwtCache { return &jwtCache{m: map[[32]byte]jwtEntry{}} }

func (c *jwtCache) verify(v *identity.Verifier, tok, aud string) (*identity.Caller, error) {
	h := sha256.Sum256([]byte(tok))
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[h]
	c.mu.Unlock()
	if ok && now.Before(e.exp) {
		caller, err := v.Lookup(e.id, identity.RoleAgent)
		if err != nil {
			return nil, err
		}
		caller.Method = "jwt-svid"
		return caller, nil
	}
	caller, err := v.VerifyJWT(tok, aud, identity.RoleAgent)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) > 1<<16 {
		for k, x := range c.m {
			if !now.Before(x.exp) {
				delete(c.m, k)
			}
		}
	}
	if len(c.m) <= 1<<16 {
		c.m[h] = jwtEntry{id: caller.ID, exp: caller.ExpiresAt}
	}
	c.mu.Unlock()
	return caller, nil
}
