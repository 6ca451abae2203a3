package setup

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/internal/mcptest"
	"github.com/warden-run/warden/supply"
)

// supplyDeployment initialises a data directory whose gateway fronts ups.
func supplyDeployment(t *testing.T, ups []config.Upstream) *Deployment {
	t.Helper()
	dir := config.Dir(filepath.Join(t.TempDir(), "w"))
	rep, err := Init(ctx, dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep.Config.Gateway.Upstreams = ups
	if err := rep.Config.Save(dir.Config()); err != nil {
		t.Fatal(err)
	}
	d, err := Open(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// lockAll does what `warden tools lock` does: pin every upstream as it is,
// list its tools through a gateway whose launcher verifies against those
// pins, and write warden.lock.
func lockAll(t *testing.T, d *Deployment) *supply.Lock {
	t.Helper()
	pins := map[string]*supply.Identity{}
	for _, u := range d.Config.Gateway.Upstreams {
		id, err := supply.IdentityOf(u)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		pins[u.Name] = id
	}
	sup, err := d.NewSupplyPinnedTo(nil, pins)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := d.NewGatewayWith(sup.Launcher, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw.Start(ctx)
	listed := map[string][]*mcp.Tool{}
	for _, tl := range gw.Tools() {
		listed[tl.Server] = append(listed[tl.Server], tl.Upstream)
	}
	gw.Close()
	st := supply.NewStore(d.Config.Supply.LockPath(d.Dir))
	_, after, err := st.Update(func(l *supply.Lock) error {
		for name, id := range pins {
			if len(listed[name]) == 0 {
				return errors.New(name + " listed no tools")
			}
			if _, err := supply.ApproveIn(l, name, "", listed[name], id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return after
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func toolByID(gw *gateway.Gateway, id string) *gateway.Tool {
	for _, t := range gw.Tools() {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func buildRugpull(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rugpull")
	if out, err := exec.Command("go", "build", "-o", bin, "../../supply/internal/rugpull").CombinedOutput(); err != nil {
		t.Fatalf("building rugpull: %v\n%s", err, out)
	}
	return bin
}

// TestSupplyWithRealServers runs the real npm servers through the real
// gateway: the lock is written; a wrapper that alters a served tool's
// description gets it quarantined until approved.
func TestSupplyWithRealServers(t *testing.T) {
	ecmd, eargs := mcptest.EverythingServer(t)
	fcmd, fargs := mcptest.FilesystemServer(t, t.TempDir())
	mcmd, margs, menv := mcptest.MemoryServer(t)
	env := map[string]string{}
	for _, kv := range menv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	trigger := filepath.Join(t.TempDir(), "pull")
	wrapped := map[string]string{"RUGPULL_TRIGGER": trigger, "PATH": os.Getenv("PATH")}
	for k, v := range env {
		wrapped[k] = v
	}
	d := supplyDeployment(t, []config.Upstream{
		{Name: "everything", Stdio: &config.StdioUpstream{Command: ecmd, Args: eargs}},
		{Name: "filesystem", Stdio: &config.StdioUpstream{Command: fcmd, Args: fargs}},
		{Name: "memory", Stdio: &config.StdioUpstream{Command: mcmd, Args: margs, Env: env}},
		{Name: "wrapped", Stdio: &config.StdioUpstream{Command: buildRugpull(t), Args: append([]string{mcmd}, margs...), Env: wrapped}},
	})
	lock := lockAll(t, d)
	for _, s := range []string{"everything", "filesystem", "memory", "wrapped"} {
		if len(lock.Servers[s].Tools) == 0 {
			t.Fatalf("%s: nothing pinned", s)
		}
	}
	if n := lock.Servers["everything"].Identity.NPM; n == nil || n.Name != mcptest.PkgEverything || !strings.HasPrefix(n.Integrity, "sha512-") {
		t.Fatalf("everything's identity: %+v", n)
	}
	if b, _ := os.ReadFile(d.Config.Supply.LockPath(d.Dir)); !strings.Contains(string(b), `"version": 1`) {
		t.Fatal("lock not written")
	}

	sup, err := d.NewSupply(nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := d.NewGatewayWith(sup.Launcher, sup.Apply)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.Start(ctx)
	wctx, cancel := contextWithCancel()
	defer cancel()
	go sup.Watch(wctx, gw)
	for _, tl := range gw.Tools() {
		if tl.Quarantine != "" {
			t.Fatalf("%s held back from a fresh lock: %s", tl.ID, tl.Quarantine)
		}
	}
	if len(gw.Tools()) < 30 {
		t.Fatalf("only %d tools", len(gw.Tools()))
	}
	// The rug pull: the wrapper changes the first tool's description and
	// says so; the gateway holds the tool back.
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	id := ""
	waitFor(t, "the changed tool to be held back", func() bool {
		for _, tl := range gw.Tools() {
			if tl.Quarantine != "" {
				id = tl.ID
			}
		}
		return id != ""
	})
	if !strings.HasPrefix(id, "wrapped.") {
		t.Fatalf("%s held back", id)
	}
	q := toolByID(gw, id).Quarantine
	if !strings.Contains(q, "changed since it was pinned (description)") || !strings.Contains(q, "description scanner") {
		t.Fatalf("reason: %s", q)
	}
	for _, tl := range gw.Tools() {
		if tl.ID != id && tl.Quarantine != "" {
			t.Fatalf("%s held back too: %s", tl.ID, tl.Quarantine)
		}
	}
	// The operator approves the new description; the scanner still holds
	// it back (it is poisoned) until those findings are accepted.
	tl := toolByID(gw, id)
	if _, err := supply.Approve(sup.Store, "wrapped", tl.Name, []*mcp.Tool{tl.Upstream}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the approval to be seen", func() bool { return !strings.Contains(toolByID(gw, id).Quarantine, "changed") })
	if q := toolByID(gw, id).Quarantine; !strings.Contains(q, "scanner") {
		t.Fatalf("poisoned tool exposed after approval: %q", q)
	}
	sup.Store.Update(func(l *supply.Lock) error {
		l.Servers["wrapped"].Tools[tl.Name].AcceptFindings = []string{supply.RuleHiddenTag, supply.RuleSensitivePath, supply.RuleCoercion, supply.RuleConcealment, supply.RuleCombination, supply.RuleInjection}
		return nil
	})
	waitFor(t, "the accepted tool to be exposed", func() bool { return toolByID(gw, id).Quarantine == "" })
}

// TestTamperedNPMServerIsNotLaunched modifies a file inside an installed
// npm server package (in a copy of testdata/npm): Warden refuses to launch
// it, with the file named.
func TestTamperedNPMServerIsNotLaunched(t *testing.T) {
	m := mcptest.ModulesFor(t)
	npm := filepath.Join(t.TempDir(), "npm")
	if out, err := exec.Command("cp", "-a", m.Dir, npm).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	entry := filepath.Join(npm, "node_modules/@modelcontextprotocol/server-memory/dist/index.js")
	d := supplyDeployment(t, []config.Upstream{
		{Name: "memory", Stdio: &config.StdioUpstream{Command: m.Node, Args: []string{entry}, Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(t.TempDir(), "m.json")}}},
	})
	lockAll(t, d)
	f, err := os.OpenFile(entry, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n;globalThis.evil = true;\n")
	f.Close()

	sup, err := d.NewSupply(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sup.Launcher.Verify("memory", d.Config.Gateway.Upstreams[0].Stdio)
	var re *supply.RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "server-memory/dist/index.js: file changed") {
		t.Fatalf("err = %v", err)
	}
	gw, err := d.NewGatewayWith(sup.Launcher, sup.Apply)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.Start(ctx)
	if n := len(gw.Tools()); n != 0 {
		t.Fatalf("a tampered server was launched: %d tools", n)
	}
}

func contextWithCancel() (contextT, func()) { return context.WithCancel(ctx) }

type contextT = context.Context
