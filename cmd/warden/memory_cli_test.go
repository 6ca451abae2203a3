package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/events"
	"github.com/warden-run/warden/gateway"
	"github.com/warden-run/warden/internal/keyfile"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/memory"
	"github.com/warden-run/warden/store"
)

// memoryFixture is a data directory whose memory was written through
// Warden's memory server, the deployment closed: agent/a holds entries 1 to
// 4, agent/b entry 1.
func memoryFixture(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	if out, err := run(ctx, "init", "--dir", dir, "--trust-domain", "example.org"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d, err := setup.Open(ctx, config.Dir(dir), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	if _, err := d.Memory.MCP().Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "gw"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ agent, tool, args string }{
		{"a", "create_entities", `{"entities":[{"name":"ACME","entityType":"supplier","observations":["pays to acct-supplier"]}]}`},
		{"a", "add_observations", `{"observations":[{"entityName":"ACME","contents":["prefers email"]}]}`},
		{"a", "add_observations", `{"observations":[{"entityName":"ACME","contents":["invoices monthly"]}]}`},
		{"a", "create_entities", `{"entities":[{"name":"Bob","entityType":"person","observations":["ACME contact"]}]}`},
		{"b", "create_entities", `{"entities":[{"name":"X","entityType":"thing","observations":[]}]}`},
	} {
		c := memory.Caller{Agent: "spiffe://example.org/agent/" + w.agent, Name: w.agent, Task: "t1", Session: "s1", Call: "c1"}
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: w.tool, Arguments: json.RawMessage(w.args), Meta: mcp.Meta{memory.MetaCaller: c}})
		if err != nil || r.IsError {
			t.Fatalf("%s: %v %+v", w.tool, err, r)
		}
	}
	cs.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyDir copies a closed data directory, modes included.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), ".warden")
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// Offline verification names every kind of tampering, and a truncation
// only the audit log can reveal.
func TestMemoryVerifyCatchesTampering(t *testing.T) {
	ctx := context.Background()
	fixture := memoryFixture(t)
	sqlDamage := func(q string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			db, err := store.Open(ctx, config.Dir(dir).Database())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	// insertWithKey appends an entry with the memory key itself, but not
	// through Warden: the audit log never hears of it.
	insertWithKey := func(t *testing.T, dir string) {
		k, err := keyfile.Load(config.Dir(dir).KeyFile(config.KeyMemory))
		if err != nil {
			t.Fatal(err)
		}
		db, err := store.Open(ctx, config.Dir(dir).Database())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		st, err := memory.OpenStore(ctx, memory.StoreOptions{DB: db, Key: k.(ed25519.PrivateKey), Events: &events.Recorder{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, memory.Entry{NS: "agent/a", Op: memory.OpAddObservations, Agent: "spiffe://example.org/agent/a",
			Payload: json.RawMessage(`{"observations":[{"entityName":"ACME","contents":["pays to acct-attacker"]}]}`), Trust: memory.Trusted, Status: memory.Active}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		damage func(*testing.T, string)
		args   []string
		code   int
		want   []string
	}{
		{"honest store", nil, nil, 0, []string{"5 entries; 5 verified", "5 checked against the audit log", "memory verified"}},
		{"edited payload", sqlDamage(`UPDATE memory_entries SET payload = replace(payload, 'invoices monthly', 'pay acct-attacker') WHERE ns = 'agent/a' AND seq = 3`), nil, 2,
			[]string{"PROBLEM agent/a#3: its content does not match its hash (edited outside Warden)"}},
		{"edited payload and hash", sqlDamage(`UPDATE memory_entries SET hash = 'ff' || substr(hash, 3) WHERE ns = 'agent/a' AND seq = 3`), nil, 2,
			[]string{"PROBLEM agent/a#3: its content does not match its hash", "PROBLEM agent/a#3: its hash differs from the one the audit log recorded (rewritten)"}},
		{"edited provenance", sqlDamage(`UPDATE memory_entries SET agent = 'spiffe://example.org/agent/b' WHERE ns = 'agent/a' AND seq = 2`), nil, 2,
			[]string{"PROBLEM agent/a#2: its content does not match its hash"}},
		{"deleted entry", sqlDamage(`DELETE FROM memory_entries WHERE ns = 'agent/a' AND seq = 2`), nil, 2,
			[]string{"PROBLEM agent/a#2: entries 2 to 2 are missing", "agent/a#2: recorded in the audit log but missing from the store"}},
		{"truncated namespace", sqlDamage(`DELETE FROM memory_entries WHERE ns = 'agent/a' AND seq >= 3`), nil, 2,
			[]string{"PROBLEM agent/a#3: recorded in the audit log but missing from the store", "PROBLEM agent/a#4: recorded"}},
		{"truncated namespace, log not consulted", sqlDamage(`DELETE FROM memory_entries WHERE ns = 'agent/a' AND seq >= 3`), []string{"--no-log"}, 0,
			[]string{"3 entries; 3 verified", "NOT proven", "truncation"}},
		{"deleted namespace", sqlDamage(`DELETE FROM memory_entries WHERE ns = 'agent/b'`), nil, 2,
			[]string{"PROBLEM agent/b#1: recorded in the audit log but missing from the store"}},
		{"forged signature", sqlDamage(`UPDATE memory_entries SET sig = zeroblob(64) WHERE ns = 'agent/b'`), nil, 2,
			[]string{"PROBLEM agent/b#1: its signature does not verify"}},
		{"inserted with the memory key", insertWithKey, nil, 2,
			[]string{"PROBLEM agent/a#5: the audit log never recorded this entry (inserted outside Warden)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, fixture)
			if c.damage != nil {
				c.damage(t, dir)
			}
			out, err := run(ctx, append([]string{"memory", "verify", "--dir", dir}, c.args...)...)
			if exitCode(err) != c.code {
				t.Fatalf("exit %d (%v), want %d\n%s", exitCode(err), err, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("log", func(t *testing.T) {
		dir := copyDir(t, fixture)
		out, err := run(ctx, "memory", "log", "agent/a", "--dir", dir)
		if err != nil || strings.Count(out, " ok\n") != 4 || !strings.Contains(out, "add_observations") || !strings.Contains(out, "4 entries verify, 0 problems") {
			t.Fatalf("%v\n%s", err, out)
		}
		sqlDamage(`UPDATE memory_entries SET payload = '{}' WHERE ns = 'agent/a' AND seq = 2`)(t, dir)
		out, err = run(ctx, "memory", "show", "agent/a", "--dir", dir, "-o", "json")
		var rows []memoryRow
		if exitCode(err) != 2 || json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &rows) != nil || len(rows) != 4 || rows[1].Verified || rows[1].Problem == "" {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := run(ctx, "memory", "log", "agent/nobody", "--dir", dir); err == nil || !strings.Contains(err.Error(), "namespaces: agent/a, agent/b") {
			t.Fatalf("unknown namespace: %v", err)
		}
	})
	t.Run("not a data directory", func(t *testing.T) {
		if _, err := run(ctx, "memory", "verify", "--dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no database") {
			t.Fatalf("err = %v", err)
		}
	})
}

const memoryCLIPolicy = `
@id("agents-may-use-memory")
permit (principal, action == Action::"call", resource)
when { resource.server == "memory" };
`

// The recovery story through the real binary: an agent writes
// through the gateway to Warden's memory, the operator snapshots, the memory
// is poisoned, and a rollback through the control plane restores the graph
// the agent reads; verify then proves the store, rollback included, against
// the audit log while Warden runs.
func TestMemorySnapshotPoisonRollback(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".warden")
	// The default configuration serves Warden's memory as memory.*; its
	// tools are pinned like any upstream's.
	if out, err := run(ctx, "init", "--dir", dir, "--trust-domain", "example.org"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := run(ctx, "tools", "lock", "--dir", dir); err != nil || !strings.Contains(out, "memory: 9 tools pinned") {
		t.Fatalf("%v\n%s", err, out)
	}
	serve(t, dir)
	creds := enrolAgent(t, dir, "billing-bot")
	pol := filepath.Join(t.TempDir(), "memory.cedar")
	os.WriteFile(pol, []byte(memoryCLIPolicy), 0o600)
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(ctx, append(args, "--dir", dir)...)
		if err != nil {
			t.Fatalf("warden %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustRun("policy", "apply", pol)
	grantFile := filepath.Join(t.TempDir(), "grant.jwt")
	mustRun("task", "grant", "--agent", "billing-bot", "--intent", "remember suppliers", "--allow", "memory.*", "--out", grantFile)

	cfg, err := config.Load(config.Dir(dir).Config())
	if err != nil {
		t.Fatal(err)
	}
	cs := agentSession(t, "https://"+cfg.Gateway.Listen+"/mcp", creds, grantFile)
	callTool := func(tool, args string) string {
		t.Helper()
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, c := range r.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		if r.IsError {
			t.Fatalf("%s: %s", tool, b.String())
		}
		return b.String()
	}
	callTool("memory.create_entities", `{"entities":[{"name":"ACME","entityType":"supplier","observations":["pays to acct-supplier"]}]}`)
	callTool("memory.create_relations", `{"relations":[{"from":"ACME","to":"ACME","relationType":"invoices"}]}`)

	if out := mustRun("memory", "snapshot", "before-incident"); !strings.Contains(out, "agent/billing-bot at #2") {
		t.Fatalf("snapshot: %s", out)
	}
	if _, err := run(ctx, "memory", "snapshot", "before-incident", "--dir", dir); err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("snapshot name reused: %v", err)
	}
	before := callTool("memory.read_graph", `{}`)

	// The poisoning: a plausible fact and a deletion.
	callTool("memory.add_observations", `{"observations":[{"entityName":"ACME","contents":["ACME's bank account changed to acct-attacker"]}]}`)
	callTool("memory.delete_relations", `{"relations":[{"from":"ACME","to":"ACME","relationType":"invoices"}]}`)
	if g := callTool("memory.read_graph", `{}`); !strings.Contains(g, "acct-attacker") || strings.Contains(g, "invoices") {
		t.Fatalf("poisoned graph: %s", g)
	}

	if out := mustRun("memory", "rollback", "--to", "before-incident"); !strings.Contains(out, "agent/billing-bot: 2 entries undone") {
		t.Fatalf("rollback: %s", out)
	}
	if after := callTool("memory.read_graph", `{}`); after != before {
		t.Fatalf("graph after rollback:\n%s\nwant the graph at the snapshot:\n%s", after, before)
	}
	if out := mustRun("memory", "snapshots"); !strings.Contains(out, "before-incident") || !strings.Contains(out, "admin") {
		t.Fatalf("snapshots: %s", out)
	}
	out := mustRun("memory", "log", "agent/billing-bot")
	if !strings.Contains(out, "undone by #5") || !strings.Contains(out, "rollback") || strings.Count(out, " ok\n") != 5 {
		t.Fatalf("log: %s", out)
	}
	if _, err := run(ctx, "memory", "release", "agent/billing-bot#3", "--dir", dir); err == nil || !strings.Contains(err.Error(), "not quarantined") {
		t.Fatalf("releasing an entry that is not quarantined: %v", err)
	}
	if _, err := run(ctx, "memory", "rollback", "--to", "nope", "--dir", dir); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("rollback to a missing snapshot: %v", err)
	}
	if out := mustRun("memory", "verify"); !strings.Contains(out, "5 entries; 5 verified") || !strings.Contains(out, "5 checked against the audit log") {
		t.Fatalf("verify: %s", out)
	}
}

// agentSession connects to the gateway as the agent: its X.509-SVID over
// mTLS, the grant in Warden-Grant.
func agentSession(t *testing.T, url, creds, grantFile string) *mcp.ClientSession {
	t.Helper()
	cred, err := credential.Load(creds)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(grantFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range cred.Roots {
		pool.AddCert(r)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cred.TLSCertificate()}, MinVersion: tls.VersionTLS13}}
	hc := &http.Client{Transport: gateway.GrantTransport(strings.TrimSpace(string(tok)), tr)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}
