package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/warden-run/warden/bench/internal/machine"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/mcptest"
)

// A target is one way of reaching server-everything's echo tool. Start
// brings up whatever the target needs (fresh processes for each target) and
// returns a connected client session; the harness then drives it. A running
// Warden gateway plugs in as one more target (wardenTarget).
type target interface {
	// Name is the row label, Front the transport the client speaks to it.
	Name() string
	Front() string
	// Start connects a client session; stop ends the session and anything
	// Start launched.
	Start(ctx context.Context, env *benchEnv) (conn *targetConn, err error)
}

// targetConn is a connected target.
type targetConn struct {
	session *mcp.ClientSession
	tool    string // tool name to call (namespaced behind Warden)
	pid     int    // the proxy's process, whose CPU time is measured (0: none or unknown)
	stop    func() error
}

// benchEnv is what every target shares.
type benchEnv struct {
	modules  *mcptest.Modules
	protocol string
	self     string // this executable, for the pass-through child
	client   *mcp.Client
}

func (e *benchEnv) connect(ctx context.Context, t mcp.Transport) (*mcp.ClientSession, error) {
	cs, err := e.client.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: e.protocol})
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	return cs, nil
}

// httpClient is a keep-alive client with enough idle connections for the
// concurrency the harness runs at (Go's default keeps two per host, which
// would reopen connections at c=8 and measure TCP set-up instead).
func httpClient(tlsConf *tls.Config) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSClientConfig:     tlsConf,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

func (e *benchEnv) connectHTTP(ctx context.Context, url string, hc *http.Client) (*mcp.ClientSession, error) {
	if hc == nil {
		hc = httpClient(nil)
	}
	return e.connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             url,
		HTTPClient:           hc,
		DisableStandaloneSSE: true, // request/response only; same for every target
	})
}

// stdioGrace is how long a stdio server may take to exit after its stdin
// closes before it is sent SIGTERM (server-everything does not exit on EOF).
const stdioGrace = 500 * time.Millisecond

// directTarget: the Go SDK client starts server-everything itself.
type directTarget struct{}

func (directTarget) Name() string  { return "direct" }
func (directTarget) Front() string { return "stdio" }
func (directTarget) Start(ctx context.Context, env *benchEnv) (*targetConn, error) {
	up, err := env.modules.Everything()
	if err != nil {
		return nil, err
	}
	cs, err := env.connect(ctx, &mcp.CommandTransport{Command: exec.Command(up.Path, up.Args...), TerminateDuration: stdioGrace})
	if err != nil {
		return nil, err
	}
	return &targetConn{session: cs, tool: "echo", stop: cs.Close}, nil
}

// passthroughTarget: this program, re-executed as the bare Go-SDK proxy,
// in front of server-everything.
type passthroughTarget struct{ front passthroughFront }

func (p passthroughTarget) Name() string { return "go-sdk pass-through" }
func (p passthroughTarget) Front() string {
	switch p.front {
	case frontHTTP:
		return "streamable HTTP"
	case frontHTTPJSON:
		return "streamable HTTP, JSON responses"
	}
	return "stdio"
}

func (p passthroughTarget) Start(ctx context.Context, env *benchEnv) (*targetConn, error) {
	up, err := env.modules.Everything()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-serve-passthrough", string(p.front), "-protocol", env.protocol, "--", up.Path}, up.Args...)
	cmd := exec.Command(env.self, args...)
	cmd.Stderr = os.Stderr
	if p.front == frontStdio {
		cs, err := env.connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * stdioGrace})
		if err != nil {
			return nil, fmt.Errorf("pass-through (stdio): %w", err)
		}
		return &targetConn{session: cs, tool: "echo", pid: cmd.Process.Pid, stop: cs.Close}, nil
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("pass-through (http): %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting pass-through (http): %w", err)
	}
	stopChild := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}
	url, err := readListening(stdout)
	if err != nil {
		_ = stopChild()
		return nil, err
	}
	cs, err := env.connectHTTP(ctx, url, nil)
	if err != nil {
		_ = stopChild()
		return nil, fmt.Errorf("pass-through (http): %w", err)
	}
	return &targetConn{session: cs, tool: "echo", pid: cmd.Process.Pid, stop: func() error {
		return errors.Join(cs.Close(), stopChild())
	}}, nil
}

// bridgeTarget: an npm bridge (supergateway, mcp-proxy) in front of
// server-everything.
type bridgeTarget struct {
	kind    mcptest.BridgeKind
	version string // as pinned in testdata/npm; checked at start
}

func (b bridgeTarget) Name() string  { return string(b.kind) + " " + b.version }
func (b bridgeTarget) Front() string { return "streamable HTTP" }
func (b bridgeTarget) Start(ctx context.Context, env *benchEnv) (*targetConn, error) {
	pkg := map[mcptest.BridgeKind]string{mcptest.Supergateway: mcptest.PkgSupergate, mcptest.MCPProxy: mcptest.PkgMCPProxy}[b.kind]
	if v, err := env.modules.PackageVersion(pkg); err != nil {
		return nil, err
	} else if v != b.version {
		return nil, fmt.Errorf("%s is %s in testdata/npm, want %s", pkg, v, b.version)
	}
	up, err := env.modules.Everything()
	if err != nil {
		return nil, err
	}
	br, err := env.modules.StartBridge(ctx, b.kind, up)
	if err != nil {
		return nil, err
	}
	cs, err := env.connectHTTP(ctx, br.URL, nil)
	if err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("%s: %w", b.kind, err)
	}
	return &targetConn{session: cs, tool: "echo", pid: br.PID(), stop: func() error {
		return errors.Join(cs.Close(), br.Close())
	}}, nil
}

// wardenTarget: a Warden gateway that is already running (the harness does
// not start one), reached over streamable HTTP with mTLS by the agent
// credential in credsDir (svid.key, svid.pem, bundle.pem) and the task grant
// from grantFile in the Warden-Grant header. The gateway must have
// server-everything as an upstream; tool is its namespaced echo.
type wardenTarget struct {
	label     string // e.g. "audit async"
	url       string
	credsDir  string
	grantFile string
	tool      string
	pid       int // the gateway's process when the harness started it
}

func (w wardenTarget) Name() string  { return "warden (" + w.label + ")" }
func (w wardenTarget) Front() string { return "streamable HTTP + mTLS" }
func (w wardenTarget) Start(ctx context.Context, env *benchEnv) (*targetConn, error) {
	tlsConf, err := wardenTLS(w.credsDir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(w.grantFile)
	if err != nil {
		return nil, fmt.Errorf("reading grant: %w", err)
	}
	grant := strings.TrimSpace(string(b))
	if grant == "" || strings.ContainsAny(grant, "\r\n") {
		return nil, fmt.Errorf("grant file %s must hold one token", w.grantFile)
	}
	hc := httpClient(tlsConf)
	hc.Transport = gateway.GrantTransport(grant, hc.Transport)
	cs, err := env.connectHTTP(ctx, w.url, hc)
	if err != nil {
		return nil, fmt.Errorf("warden at %s: %w", w.url, err)
	}
	return &targetConn{session: cs, tool: w.tool, pid: w.pid, stop: cs.Close}, nil
}

// wardenTLS presents the agent's X.509-SVID and accepts only a server whose
// certificate is an X.509-SVID of the same trust domain with the gateway
// role (SVIDs carry no DNS names, so the usual host name check is replaced
// by this one).
func wardenTLS(dir string) (*tls.Config, error) {
	cred, err := credential.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("agent credential: %w", err)
	}
	cert := cred.TLSCertificate()
	bundle := cred.Bundle()
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			chain := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("gateway certificate: %w", err)
				}
				chain = append(chain, c)
			}
			id, err := identity.VerifyChain(chain, bundle, time.Now())
			if err != nil {
				return fmt.Errorf("gateway certificate: %w", err)
			}
			role, _, err := identity.RoleOf(id)
			if err != nil {
				return fmt.Errorf("gateway certificate: %w", err)
			}
			if role != identity.RoleGateway {
				return fmt.Errorf("server %s is not a gateway", id)
			}
			return nil
		},
	}, nil
}

// fsyncP50 measures the median cost of a small write plus fsync in dir: the
// floor of a synchronous audit append on this disk, which the sync-audit
// target is judged against.
func fsyncP50(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 256)
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	return machine.Percentile(lat, 50), nil
}
