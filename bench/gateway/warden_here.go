package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/mcptest"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/tier"
)

// A Warden started by the harness itself, so that it is measured in the
// same run as its baselines: this program re-executed with -serve-warden
// MODE runs a whole deployment (identity, grants, Cedar policy, the audit
// log in MODE, the gateway with server-everything as a stdio upstream) in a
// temporary directory, enrols an agent, grants it everything.echo, and
// prints where to reach it as one JSON line.

// wardenHere is what the child announces.
type wardenHere struct {
	URL   string `json:"url"`
	Creds string `json:"creds"`
	Grant string `json:"grant"`
}

// startWardenHere starts the child and returns the target and a stop
// function.
func startWardenHere(mode tier.AuditMode, env *benchEnv) (wardenTarget, func(), error) {
	cmd := exec.Command(env.self, "-serve-warden", string(mode))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return wardenTarget{}, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return wardenTarget{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return wardenTarget{}, nil, fmt.Errorf("starting Warden: %w", err)
	}
	stop := func() {
		stdin.Close() // the child stops when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	var h wardenHere
	if err := json.NewDecoder(stdout).Decode(&h); err != nil {
		stop()
		return wardenTarget{}, nil, fmt.Errorf("Warden did not start: %w", err)
	}
	return wardenTarget{label: "audit " + string(mode), url: h.URL, credsDir: h.Creds, grantFile: h.Grant, tool: "everything.echo", pid: cmd.Process.Pid}, stop, nil
}

// runWardenMode is the child.
func runWardenMode(ctx context.Context, mode tier.AuditMode, stdin io.Reader, stdout io.Writer) error {
	// As `warden serve` does (cmd/warden/gc.go), unless GOGC is set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	modules, err := mcptest.Find(ctx, ".")
	if err != nil {
		return err
	}
	up, err := modules.Everything()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "warden-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := config.Dir(filepath.Join(tmp, "w"))
	if _, err := setup.Init(ctx, dir, setup.InitOptions{TrustDomain: "bench.warden.local"}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg, err := config.Load(dir.Config())
	if err != nil {
		return err
	}
	cfg.Gateway.Listen = ln.Addr().String()
	cfg.Audit.Mode = mode
	// Every check on: the upstream runs in Warden's sandbox, seeing the
	// npm packages read-only and nothing else of the host.
	cfg.Sandbox.Profiles = map[string]config.SandboxProfile{"npm": {ReadOnly: []string{modules.NodeModules()}}}
	cfg.Gateway.Upstreams = []config.Upstream{{Name: "everything", Stdio: &config.StdioUpstream{Command: up.Path, Args: up.Args, Sandbox: "npm"},
		Tools: map[string][]string{"echo": {"reads"}}}}
	if err := cfg.Save(dir.Config()); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := setup.Open(ctx, dir, log)
	if err != nil {
		return err
	}
	defer d.Close()
	for _, load := range []func(context.Context) error{d.Identity.Registry().Load, d.Grants.Load, d.Policy.Load} {
		if err := load(ctx); err != nil {
			return err
		}
	}
	if _, err := d.Policy.Apply(ctx, "bench.cedar", []byte(`@id("bench") permit (principal, action == Action::"call", resource) when { resource.server == "everything" };`), policy.Meta{By: "bench"}); err != nil {
		return err
	}
	launch, err := d.SandboxLauncher()
	if err != nil {
		return err
	}
	gw, err := d.NewGateway(launch)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gw.Start(sctx)
	defer gw.Close()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(sctx, ln) }()

	credsDir, grantFile, err := benchAgent(ctx, d, tmp)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(stdout).Encode(wardenHere{URL: "https://" + ln.Addr().String() + "/mcp", Creds: credsDir, Grant: grantFile}); err != nil {
		return err
	}
	defer profileCPU(string(mode))()
	_, _ = io.Copy(io.Discard, stdin) // until the parent is done
	cancel()
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// benchAgent enrols an agent, writes its credential, and grants it echo
// for as many calls as any run needs.
func benchAgent(ctx context.Context, d *setup.Deployment, tmp string) (string, string, error) {
	cred, rec, err := d.EnrolAgent(ctx, "bench", identity.Spec{Name: "bench", Owner: "bench@example.org", Model: "scripted"})
	if err != nil {
		return "", "", err
	}
	credsDir := filepath.Join(tmp, "creds")
	if err := cred.Save(credsDir); err != nil {
		return "", "", err
	}
	_, g, err := d.Grants.Open(ctx, grant.OpenRequest{Grantee: rec, Requester: "bench", Intent: "benchmark echo",
		Scope: grant.Scope{{Tool: "everything.echo"}}, TTL: 4 * time.Hour, Budget: grant.MaxBudget})
	if err != nil {
		return "", "", err
	}
	grantFile := filepath.Join(tmp, "grant.jwt")
	return credsDir, grantFile, os.WriteFile(grantFile, []byte(g), 0o600)
}

// profileCPU starts a CPU profile of this process into
// $WARDEN_BENCH_CPUPROFILE.<name> when that variable is set, and returns
// what stops it. The children (a Warden, a pass-through) profile themselves,
// so that their profiles can be compared call for call.
func profileCPU(name string) (stop func()) {
	path := os.Getenv("WARDEN_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + "." + name)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
