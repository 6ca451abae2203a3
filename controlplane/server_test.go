package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/audit"
	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/setup"
)

// harness is a real control plane on a loopback port over an initialised
// data directory, with the operator's client.
type harness struct {
	url    string
	srv    *Server
	d      *setup.Deployment
	admin  *Client
	roots  []*x509.Certificate
	td     spiffeid.TrustDomain
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	dir := config.Dir(filepath.Join(t.TempDir(), "warden"))
	if _, err := setup.Init(ctx, dir, setup.InitOptions{TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	d, err := setup.Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	roots := []*x509.Certificate{d.Identity.CA().Root()}
	bundle, err := identity.NewBundle(ctx, d.DB, d.Config.TrustDomainID(), roots, d.Identity.JWTKeys())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Identity: d.Identity, Bundle: bundle, Events: d.Events, Grants: d.Grants, Policy: d.Policy, Authz: d.Authz})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	h := &harness{url: "https://" + ln.Addr().String(), srv: srv, d: d, roots: roots, td: d.Config.TrustDomainID(), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- srv.Serve(sctx, ln) }()
	t.Cleanup(h.stop)
	for i := 0; !srv.Ready(); i++ {
		if i > 200 {
			t.Fatal("control plane never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cred, err := credential.Load(dir.Admin())
	if err != nil {
		t.Fatal(err)
	}
	if h.admin, err = NewClient(h.url, cred); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// enrol registers name and enrols it, returning the agent's credential.
func (h *harness) enrol(t *testing.T, name string) *credential.Credential {
	t.Helper()
	ctx := context.Background()
	reg, err := h.admin.RegisterAgent(ctx, AgentRequest{Name: name, Owner: "ops@example.org", Model: "claude-sonnet"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := identity.NewID(h.td, identity.RoleAgent, name)
	cred, err := Enroll(ctx, h.url, h.roots, id, reg.JoinToken)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func apiCode(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestAgentLifecycleOverTheAPI(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	cred := h.enrol(t, "billing-bot")
	if cred.ID.String() != "spiffe://example.org/agent/billing-bot" {
		t.Fatalf("enrolled as %s", cred.ID)
	}
	agentClient, err := NewClient(h.url, cred)
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := agentClient.JWTSVID(ctx, []string{"gw"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Renewal keeps the key and the thumbprint.
	renewed, err := Renewer("")(ctx, cred)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := identity.Thumbprint(cred.Chain[0].PublicKey)
	after, _ := identity.Thumbprint(renewed.Chain[0].PublicKey)
	if before != after {
		t.Fatal("renewal changed the key")
	}

	if _, err := h.admin.DisableAgent(ctx, "billing-bot"); err != nil {
		t.Fatal(err)
	}
	// The very next request with the still-unexpired SVIDs is refused.
	if _, err := agentClient.JWTSVID(ctx, []string{"gw"}, 0); apiCode(err) != "identity_disabled" {
		t.Fatalf("disabled agent minted a JWT-SVID: %v", err)
	}
	v, err := h.admin.Verify(ctx, VerifyRequest{JWTSVID: jwt.Token, Audience: "gw"})
	if apiCode(err) != "identity_disabled" {
		t.Fatalf("disabled agent's JWT-SVID verified: %v %v", v, err)
	}
	if _, err := Renewer("")(ctx, renewed); apiCode(err) != "identity_disabled" {
		t.Fatalf("disabled agent renewed: %v", err)
	}
	if _, err := h.admin.EnableAgent(ctx, "billing-bot"); err != nil {
		t.Fatal(err)
	}
	v, err = h.admin.Verify(ctx, VerifyRequest{JWTSVID: jwt.Token, Audience: "gw"})
	if err != nil || v.SPIFFEID != cred.ID.String() || v.Attestation.Owner.Value != "ops@example.org" {
		t.Fatalf("verify after enable: %+v %v", v, err)
	}
	ag, err := h.admin.GetAgent(ctx, "billing-bot")
	if err != nil || !ag.Enrolled || ag.Status != "active" {
		t.Fatalf("agent = %+v, %v", ag, err)
	}
	list, err := h.admin.ListAgents(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := h.admin.DeleteAgent(ctx, "billing-bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.RegisterAgent(ctx, AgentRequest{Name: "billing-bot", Owner: "o@example.org", Model: "m"}); apiCode(err) != "identity_exists" {
		t.Fatalf("deleted name reused: %v", err)
	}
}

func TestOperatorRoutesRefuseEveryOtherCaller(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	cred := h.enrol(t, "a")
	agentClient, _ := NewClient(h.url, cred)
	anon, _ := NewAnonymousClient(h.url, h.roots, h.td)

	if _, err := agentClient.ListAgents(ctx); apiCode(err) != "identity_wrong_role" {
		t.Fatalf("agent listed agents: %v", err)
	}
	if _, err := agentClient.RegisterAgent(ctx, AgentRequest{Name: "b", Owner: "o@example.org", Model: "m"}); apiCode(err) != "identity_wrong_role" {
		t.Fatalf("agent registered an agent: %v", err)
	}
	if _, err := anon.ListAgents(ctx); apiCode(err) != "authentication_required" {
		t.Fatalf("anonymous caller listed agents: %v", err)
	}
	if _, err := h.admin.JWTSVID(ctx, []string{"gw"}, 0); apiCode(err) != "identity_wrong_role" {
		t.Fatalf("operator minted an agent JWT-SVID: %v", err)
	}
	// Each refusal on an operator route is recorded with its reason.
	if n := countEvents(t, h, `"status_code":"identity_wrong_role"`); n < 2 {
		t.Fatalf("%d refusals recorded, want at least 2", n)
	}
	// A certificate from another CA is refused with a reason, not a bare
	// handshake failure.
	other := t.TempDir()
	if _, err := setup.Init(ctx, config.Dir(other), setup.InitOptions{TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	foreign, _ := credential.Load(config.Dir(other).Admin())
	foreign.Roots = h.roots // trust the real server, present a foreign client certificate
	fc, _ := NewClient(h.url, foreign)
	if _, err := fc.ListAgents(ctx); apiCode(err) != "svid_untrusted" {
		t.Fatalf("foreign operator listed agents: %v", err)
	}
}

// countEvents counts the events in the audit log whose JSON contains needle.
func countEvents(t *testing.T, h *harness, needle string) int {
	t.Helper()
	if _, err := h.d.Audit.CheckpointNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := audit.LocalVerifier(audit.Dir(h.d.Dir))
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.OpenReader(audit.Dir(h.d.Dir), v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	if err := r.Scan(context.Background(), 0, func(rec audit.Record) error {
		n += strings.Count(string(rec.Event), needle)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnrolmentRefusals(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	reg, err := h.admin.RegisterAgent(ctx, AgentRequest{Name: "a", Owner: "o@example.org", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := identity.NewID(h.td, identity.RoleAgent, "b")
	if _, err := Enroll(ctx, h.url, h.roots, other, reg.JoinToken); apiCode(err) != "csr_wrong_id" {
		t.Fatalf("token for a enrolled b: %v", err)
	}
	me, _ := identity.NewID(h.td, identity.RoleAgent, "a")
	if _, err := Enroll(ctx, h.url, h.roots, me, reg.JoinToken); err != nil {
		t.Fatalf("token was used up by the refused attempt: %v", err)
	}
	if _, err := Enroll(ctx, h.url, h.roots, me, reg.JoinToken); apiCode(err) != "join_token_used" {
		t.Fatalf("token reused: %v", err)
	}
	if _, err := Enroll(ctx, h.url, h.roots, me, "forged"); apiCode(err) != "join_token_unknown" {
		t.Fatalf("forged token: %v", err)
	}
}

func TestServerIdentityIsCheckedByClients(t *testing.T) {
	h := start(t)
	// A client whose trust domain differs refuses the server.
	c, _ := NewAnonymousClient(h.url, h.roots, spiffeid.RequireTrustDomainFromString("other.example"))
	if _, err := c.Bundle(context.Background()); err == nil || !strings.Contains(err.Error(), "outside trust domain") {
		t.Fatalf("client accepted a server of another trust domain: %v", err)
	}
	// A client trusting another CA refuses the server.
	c2, _ := NewAnonymousClient(h.url, []*x509.Certificate{otherRoot(t)}, h.td)
	if _, err := c2.Bundle(context.Background()); err == nil {
		t.Fatal("client accepted a server it cannot verify")
	}
}

func otherRoot(t *testing.T) *x509.Certificate {
	dir := config.Dir(t.TempDir())
	if _, err := setup.Init(context.Background(), dir, setup.InitOptions{TrustDomain: "example.org"}); err != nil {
		t.Fatal(err)
	}
	c, err := identity.LoadCerts(dir.CertFile(config.KeyX509Root))
	if err != nil {
		t.Fatal(err)
	}
	return c[0]
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	h := start(t)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(path string) (int, string) {
		resp, err := insecure.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d after loading", code)
	}
	if code, body := get("/metrics"); code != 401 || !strings.Contains(body, "authentication_required") {
		t.Errorf("/metrics without a certificate = %d %s", code, body)
	}
	if code, body := get("/v1/nope"); code != 404 || !strings.Contains(body, "not_found") {
		t.Errorf("unknown route = %d %s", code, body)
	}
	var metrics []byte
	if err := h.admin.do(context.Background(), http.MethodGet, "/metrics", nil, &metrics); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), "warden_controlplane_requests_total") {
		t.Error("metrics lack the request counter")
	}
	// Before persisted state is loaded, /readyz refuses.
	fresh, err := New(Options{Identity: h.d.Identity, Bundle: h.srv.bundle, Events: h.d.Events})
	if err != nil {
		t.Fatal(err)
	}
	rec := &responseRecorder{header: http.Header{}}
	fresh.Handler().ServeHTTP(rec, mustRequest(t, "/readyz"))
	if rec.code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before loading = %d", rec.code)
	}
}

func TestBadRequestBodies(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	cases := []struct {
		name string
		body any
		code string
	}{
		{"unknown field", map[string]any{"name": "a", "owner": "o@example.org", "model": "m", "admin": true}, "bad_request"},
		{"wrong type", map[string]any{"name": 7}, "bad_request"},
		{"huge body", map[string]any{"name": strings.Repeat("a", 2<<20)}, "body_too_large"},
		{"bad tier", map[string]any{"name": "a", "owner": "o@example.org", "model": "m", "tier": "gold"}, "invalid_input"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := h.admin.do(ctx, http.MethodPost, "/v1/agents", c.body, nil)
			if apiCode(err) != c.code {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	h := start(t)
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not shut down")
	}
	h.cancel = nil
	if _, err := h.admin.ListAgents(context.Background()); err == nil {
		t.Fatal("server still answering after shutdown")
	}
}

// Every /v1 route must be documented in docs/openapi.yaml, and every path
// documented there must exist: the document stays true.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	s := &Server{}
	routes := map[string]bool{}
	for _, rt := range s.routeTable() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		routes[path+" "+strings.ToLower(method)] = true
	}
	documented := map[string]bool{}
	var cur string
	pathRe := regexp.MustCompile(`^  (/v1/\S+):\s*$`)
	methodRe := regexp.MustCompile(`^    (get|post|put|delete|patch):\s*$`)
	for _, line := range strings.Split(doc, "\n") {
		if m := pathRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
		} else if m := methodRe.FindStringSubmatch(line); m != nil && cur != "" {
			documented[cur+" "+m[1]] = true
		} else if strings.HasPrefix(line, "  /") {
			cur = ""
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not in docs/openapi.yaml", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("docs/openapi.yaml documents %s, which does not exist", d)
		}
	}
}

type responseRecorder struct {
	header http.Header
	code   int
}

func (r *responseRecorder) Header() http.Header         { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *responseRecorder) WriteHeader(c int)           { r.code = c }

func mustRequest(t *testing.T, path string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
