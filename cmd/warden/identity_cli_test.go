package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/config"
)

// run executes the warden CLI in-process and returns its standard output.
func run(ctx context.Context, args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve initialises dir on a free port and runs `warden serve` until the
// test ends.
func serve(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	if _, err := run(ctx, "init", "--dir", dir, "--trust-domain", "example.org"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Dir(dir).Config())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ControlPlane.Listen = freePort(t)
	cfg.Gateway.Listen = freePort(t)
	if err := cfg.Save(config.Dir(dir).Config()); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := run(sctx, "serve", "--dir", dir, "--log-level", "error")
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Second}
	for i := 0; ; i++ {
		resp, err := hc.Get("https://" + cfg.ControlPlane.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if i > 300 {
			t.Fatalf("control plane never became ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var joinTokenLine = regexp.MustCompile(`(?m)^join token: (\S+)$`)

// The "done when", through the real CLI: init, serve, register,
// credentials; then disabling the agent makes its live SVID fail.
func TestIdentityWalkthrough(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)

	out, err := run(ctx, "agent", "register", "billing-bot", "--owner", "ops@example.org", "--model", "claude-sonnet", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	m := joinTokenLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no join token line in:\n%s", out)
	}
	creds := filepath.Join(t.TempDir(), "creds")
	out, err = run(ctx, "agent", "credentials", "billing-bot", "--join-token", m[1], "--out", creds, "--dir", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{"svid.key", "svid.pem", "bundle.pem", "credential.json"} {
		if _, err := os.Stat(filepath.Join(creds, f)); err != nil {
			t.Errorf("credentials did not write %s", f)
		}
	}
	if fi, _ := os.Stat(filepath.Join(creds, "svid.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("agent key mode %v", fi.Mode().Perm())
	}

	// The same token cannot be used twice.
	if _, err := run(ctx, "agent", "credentials", "billing-bot", "--join-token", m[1], "--out", filepath.Join(t.TempDir(), "again"), "--dir", dir); err == nil || !strings.Contains(err.Error(), "join_token_used") {
		t.Fatalf("reused join token: %v", err)
	}
	if out, err = run(ctx, "agent", "jwt", "--creds", creds, "--audience", "gw", "--dir", dir); err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("jwt: %q %v", out, err)
	}
	if out, err = run(ctx, "agent", "renew", "--creds", creds, "--dir", dir); err != nil {
		t.Fatalf("renew: %v\n%s", err, out)
	}
	out, err = run(ctx, "agent", "list", "--dir", dir)
	if err != nil || !strings.Contains(out, "billing-bot  active  true") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	if _, err := run(ctx, "agent", "disable", "billing-bot", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, "agent", "jwt", "--creds", creds, "--audience", "gw", "--dir", dir); err == nil || !strings.Contains(err.Error(), "identity_disabled") {
		t.Fatalf("disabled agent's live SVID still works: %v", err)
	}
	// An agent's certificate is refused on the operator API.
	if _, err := run(ctx, "agent", "list", "--creds", creds, "--dir", dir); err == nil || !strings.Contains(err.Error(), "identity_wrong_role") {
		t.Fatalf("agent credential used the operator API: %v", err)
	}
}

func TestCLIRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	serve(t, dir)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"agent", "register", "a"}, "owner: required"},
		{[]string{"agent", "register", "a/b", "--owner", "o@example.org", "--model", "m"}, "SPIFFE path segment"},
		{[]string{"agent", "register", "a", "--owner", "o@example.org", "--model", "m", "--label", "novalue"}, "want key=value"},
		{[]string{"agent", "show", "nobody"}, "identity_unknown"},
		{[]string{"agent", "credentials", "x", "--join-token", "forged", "--out", t.TempDir() + "/c"}, "join_token_unknown"},
		{[]string{"agent", "credentials", "x"}, "--join-token and --out are required"},
		{[]string{"agent", "list", "-o", "yaml"}, "want text or json"},
		{[]string{"agent", "list", "--creds", t.TempDir()}, "no usable credential"},
		{[]string{"init", "--tier", "gold"}, "unknown tier"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := run(ctx, append(c.args, "--dir", dir)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := run(ctx, "agent", "list", "--dir", filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "warden init") {
		t.Fatalf("missing data directory: %v", err)
	}
}
