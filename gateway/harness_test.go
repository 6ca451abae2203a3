package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/demotools"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/tier"
)

// TestMain lets the test binary serve a demo tool over stdio, so that stdio
// upstreams are real child processes: WARDEN_TEST_STDIO=<name>.
func TestMain(m *testing.M) {
	if name := os.Getenv("WARDEN_TEST_STDIO"); name != "" {
		s, err := demotools.New(name)
		if err != nil {
			os.Exit(2)
		}
		switch os.Getenv("WARDEN_TEST_CRASH") {
		case "1":
			go func() { time.Sleep(300 * time.Millisecond); os.Exit(3) }()
		case "garbage": // alive, but its output stops being MCP
			go func() { time.Sleep(300 * time.Millisecond); _, _ = os.Stdout.WriteString("this is not JSON-RPC\n") }()
		}
		_ = s.Run(context.Background(), &mcp.StdioTransport{})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var ctx = context.Background()

const testPolicy = `
@id("demo-agents")
permit (principal, action == Action::"call", resource)
when { resource.server == "files" || resource.server == "payments" || resource.server == "email" || resource.server == "slow" };

@id("no-deletions")
forbid (principal, action == Action::"call", resource)
when { resource.labels.contains("destructive") };
`

// env is a deployment with a running gateway in front of demo upstreams.
type env struct {
	d      *setup.Deployment
	gw     *gateway.Gateway
	url    string
	roots  []*x509.Certificate
	cancel context.CancelFunc
}

type agentCred struct {
	rec  *identity.Record
	key  *ecdsa.PrivateKey
	cert tls.Certificate
}

// httpUpstream serves a demo tool server over streamable HTTP.
func httpUpstream(t testing.TB, name string) string {
	t.Helper()
	s, err := demotools.New(name)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// stdioUpstream runs a demo tool server as a child process (this binary).
func stdioUpstream(name string, crash bool) *config.StdioUpstream {
	exe, _ := os.Executable()
	env := map[string]string{"WARDEN_TEST_STDIO": name}
	if crash {
		env["WARDEN_TEST_CRASH"] = "1"
	}
	return &config.StdioUpstream{Command: exe, Args: []string{"-test.run=^$"}, Env: env}
}

func start(t testing.TB, ups []config.Upstream, mutate func(*config.Gateway)) *env {
	t.Helper()
	return startOpts(t, ups, mutate, nil)
}

// startWith starts a gateway whose Options opt adjusts (hooks).
func startWith(t testing.TB, ups []config.Upstream, opt func(*gateway.Options)) *env {
	t.Helper()
	return startOpts(t, ups, nil, opt)
}

func startOpts(t testing.TB, ups []config.Upstream, mutate func(*config.Gateway), opt func(*gateway.Options)) *env {
	t.Helper()
	return startCfg(t, 0, ups, func(c *config.Config) {
		if mutate != nil {
			mutate(&c.Gateway)
		}
	}, opt)
}

// startCfg starts a gateway on a deployment at tier tr (0: the default)
// whose whole configuration mutate adjusts.
func startCfg(t testing.TB, tr tier.Tier, ups []config.Upstream, mutate func(*config.Config), opt func(*gateway.Options)) *env {
	t.Helper()
	dir := config.Dir(filepath.Join(t.TempDir(), "w"))
	if _, err := setup.Init(ctx, dir, setup.InitOptions{TrustDomain: "example.org", Tier: tr}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(dir.Config())
	cfg.Gateway.Listen = ln.Addr().String()
	cfg.Gateway.Upstreams = ups
	cfg.Gateway.CallTimeout = 3 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Save(dir.Config()); err != nil {
		t.Fatal(err)
	}
	d, err := setup.Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for _, load := range []func(context.Context) error{d.Identity.Registry().Load, d.Grants.Load, d.Policy.Load} {
		if err := load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Policy.Apply(ctx, "test.cedar", []byte(testPolicy), policy.Meta{By: "test"}); err != nil {
		t.Fatal(err)
	}
	gw, err := d.NewGatewayWith(nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	gw.Start(sctx)
	done := make(chan struct{})
	go func() { _ = gw.Serve(sctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); gw.Close(); <-done })
	return &env{d: d, gw: gw, url: "https://" + ln.Addr().String() + "/mcp", roots: []*x509.Certificate{d.Identity.CA().Root()}, cancel: cancel}
}

// agent registers and enrols an agent directly with the identity service.
func (e *env) agent(t testing.TB, name string) *agentCred {
	t.Helper()
	cred, rec, err := e.d.EnrolAgent(ctx, "test", identity.Spec{Name: name, Owner: "ops@example.org", Model: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return &agentCred{rec: rec, key: cred.Key.(*ecdsa.PrivateKey), cert: cred.TLSCertificate()}
}

// grantFor opens a task for the agent.
func (e *env) grantFor(t testing.TB, a *agentCred, scope string, budget int) (*grant.Task, string) {
	t.Helper()
	return e.grantWith(t, a, grant.OpenRequest{Scope: scopeOf(t, scope), Budget: budget})
}

// grantWith opens a task for the agent as r asks.
func (e *env) grantWith(t testing.TB, a *agentCred, r grant.OpenRequest) (*grant.Task, string) {
	t.Helper()
	r.Grantee, r.Requester = a.rec, "test"
	if r.Intent == "" {
		r.Intent = "pay invoice INV-42"
	}
	task, tok, err := e.d.Grants.Open(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	return task, tok
}

func scopeOf(t testing.TB, scope string) grant.Scope {
	t.Helper()
	var sc grant.Scope
	if err := jsonUnmarshal(scope, &sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

// client connects to the gateway as the agent over mTLS with the grant.
func (e *env) client(t testing.TB, a *agentCred, grantTok string) (*mcp.ClientSession, error) {
	t.Helper()
	return e.clientAt(t, e.url, a, grantTok)
}

func (e *env) clientAt(t testing.TB, endpoint string, a *agentCred, grantTok string) (*mcp.ClientSession, error) {
	t.Helper()
	return e.connect(t, endpoint, a, grantTok, nil)
}

func (e *env) clientWith(t testing.TB, a *agentCred, grantTok string, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	return e.connect(t, e.url, a, grantTok, opts)
}

func (e *env) connect(t testing.TB, endpoint string, a *agentCred, grantTok string, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range e.roots {
		pool.AddCert(r)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	if a != nil {
		tc.Certificates = []tls.Certificate{a.cert}
	}
	hc := &http.Client{Transport: gateway.GrantTransport(grantTok, &http.Transport{TLSClientConfig: tc})}
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	var out []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tool.Name)
	}
	return out
}

// decision returns the code of a refused result, or "" for a success.
func decision(t *testing.T, r *mcp.CallToolResult) string {
	t.Helper()
	if !r.IsError {
		return ""
	}
	d, ok := r.Meta[gateway.MetaDecision].(map[string]any)
	if !ok {
		return "error-without-decision"
	}
	return d["code"].(string)
}

func policyMeta() policy.Meta { return policy.Meta{By: "test"} }
