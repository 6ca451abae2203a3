package posture

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/grant"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/policy"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/supply"
	"github.com/warden-run/warden/tier"
)

func TestMain(m *testing.M) {
	// HostProbe launches a sandbox, which re-executes this test binary as
	// the sandbox's init.
	sandbox.MaybeInit()
	os.Exit(m.Run())
}

var discard = slog.New(slog.DiscardHandler)

const admin = "spiffe://warden.local/admin/admin"

// probe returns a fixed probe: every mechanism in force except those named.
func probe(off ...string) func(context.Context) (sandbox.Mechanisms, error) {
	return func(context.Context) (sandbox.Mechanisms, error) {
		m := sandbox.Mechanisms{InForce: map[string]bool{}, Detail: map[string]string{}}
		for _, x := range (sandbox.Mechanisms{}).List() {
			m.InForce[x.Name] = true
		}
		for _, o := range off {
			m.InForce[o] = false
		}
		return m, nil
	}
}

// newDeployment initialises a data directory at tier t with the example
// organisation policy applied and the builtin memory server's tools pinned.
func newDeployment(t *testing.T, tr tier.Tier) config.Dir {
	t.Helper()
	ctx := context.Background()
	dir := config.Dir(t.TempDir())
	if _, err := setup.Init(ctx, dir, setup.InitOptions{Tier: tr}); err != nil {
		t.Fatal(err)
	}
	d, err := setup.Open(ctx, dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../examples/policy/warden.cedar")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Policy.Apply(ctx, "warden.cedar", src, policy.Meta{By: admin, Message: "test"}); err != nil {
		t.Fatal(err)
	}
	cfg := d.Config
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	writeLock(t, dir, cfg)
	return dir
}

// writeLock pins every builtin upstream's tools, as `warden tools lock`
// would from the listing.
func writeLock(t *testing.T, dir config.Dir, cfg *config.Config) {
	t.Helper()
	l := supply.NewLock()
	for _, u := range cfg.Gateway.Upstreams {
		id, err := supply.IdentityOf(u)
		if err != nil {
			t.Fatal(err)
		}
		for name := range u.Tools {
			l.PinTool(u.Name, supply.Surface{Name: name, Description: "tool " + name, InputSchema: []byte(`{"type":"object"}`), OutputSchema: []byte("null"), Annotations: []byte("null")})
		}
		l.Servers[u.Name].Identity = *id
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Supply.LockPath(dir), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// editConfig changes warden.yaml.
func editConfig(t *testing.T, dir config.Dir, fn func(*config.Config)) {
	t.Helper()
	c, err := config.Load(dir.Config())
	if err != nil {
		t.Fatal(err)
	}
	fn(c)
	if err := c.Save(dir.Config()); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(dir.Config()); err != nil {
		t.Fatalf("the edited configuration does not load: %v", err)
	}
}

func assessDir(t *testing.T, dir config.Dir, p func(context.Context) (sandbox.Mechanisms, error)) *Report {
	t.Helper()
	r, err := AssessDir(context.Background(), dir, Options{Probe: p})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func phaseTiers(r *Report) map[string]tier.Tier {
	out := map[string]tier.Tier{}
	for _, ph := range r.Phases {
		out[ph.Phase.ID] = ph.Reached
	}
	return out
}

func wantControl(t *testing.T, r *Report, id string, st Status, evidence string) ControlResult {
	t.Helper()
	c, ok := r.Control(id)
	if !ok {
		t.Fatalf("no control %s in the report", id)
	}
	if c.Status != st {
		t.Errorf("%s: status %s, want %s; evidence:\n  %s", id, c.Status, st, strings.Join(c.Evidence, "\n  "))
	}
	if evidence != "" && !strings.Contains(strings.Join(c.Evidence, "\n"), evidence) {
		t.Errorf("%s: evidence does not mention %q:\n  %s", id, evidence, strings.Join(c.Evidence, "\n  "))
	}
	if st != Pass && c.Fix == "" {
		t.Errorf("%s fails with no fix", id)
	}
	return c
}

// TestTiers: a deployment made by `warden init` at each tier reaches, from
// live checks, what that tier's preset gives it.
func TestTiers(t *testing.T) {
	F, A, O := tier.Foundation, tier.Advanced, tier.Optimized
	for _, tc := range []struct {
		tier    tier.Tier
		edit    func(*config.Config)
		want    map[string]tier.Tier
		overall tier.Tier
	}{
		{tier: F, want: map[string]tier.Tier{"identity": F, "access": F, "sandbox": F, "input": F, "output": F, "memory": F, "monitoring": F, "supply": O}, overall: F},
		{tier: A, want: map[string]tier.Tier{"identity": A, "access": A, "sandbox": A, "input": A, "output": A, "memory": A, "monitoring": A, "supply": O}, overall: A},
		{tier: O, edit: func(c *config.Config) {
			c.Audit.Publish = []config.AuditPublish{{Type: "file", Path: "/var/log/warden-checkpoints"}}
		},
			// identity stops at advanced: measured workload attestation and
			// hardware-attested keys are not reachable in this version
			want: map[string]tier.Tier{"identity": A, "access": O, "sandbox": O, "input": O, "output": O, "memory": O, "monitoring": O, "supply": O}, overall: A},
	} {
		t.Run(tc.tier.String(), func(t *testing.T) {
			dir := newDeployment(t, tc.tier)
			if tc.edit != nil {
				editConfig(t, dir, tc.edit)
			}
			r := assessDir(t, dir, probe())
			got := phaseTiers(r)
			for ph, want := range tc.want {
				if got[ph] != want {
					t.Errorf("phase %s reached %s, want %s", ph, TierName(got[ph]), TierName(want))
					for _, c := range r.Phases {
						if c.Phase.ID == ph {
							for _, cr := range c.Controls {
								if cr.Status != Pass {
									t.Logf("  %s %s: %s", cr.Control.ID, cr.Status, strings.Join(cr.Evidence, "; "))
								}
							}
						}
					}
				}
			}
			if r.Overall != tc.overall {
				t.Errorf("overall %s, want %s", TierName(r.Overall), TierName(tc.overall))
			}
			wantControl(t, r, "ID-O1", NotReachable, "asserted")
			wantControl(t, r, "AC-F2", Pass, "warden.cedar")
			wantControl(t, r, "MON-F1", Pass, "signature verified")
			if !r.Meets(tc.overall) || (tc.overall < O && r.Meets(tc.overall+1)) {
				t.Errorf("Meets disagrees with overall %s", TierName(r.Overall))
			}
		})
	}
}

// open opens a deployment with its policy and grants loaded, as serve does.
func open(t *testing.T, dir config.Dir) *setup.Deployment {
	t.Helper()
	ctx := context.Background()
	d, err := setup.Open(ctx, dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Policy.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Grants.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// agent registers and enrols an agent at the deployment's tier.
func agent(t *testing.T, d *setup.Deployment, name string) *identity.Record {
	t.Helper()
	ctx := context.Background()
	_, rec, err := d.EnrolAgent(ctx, admin, identity.Spec{Name: name, Owner: "ops@example.org", Model: "claude-sonnet-4",
		CodeDigest: "sha256:" + strings.Repeat("ab", 32), Tier: d.Config.Tier})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestGrantTTL: opening a task longer than the Advanced ceiling (possible
// once warden.yaml says foundation) drops access scoping to foundation, and
// the evidence names the task and its lifetime.
func TestGrantTTL(t *testing.T) {
	ctx := context.Background()
	dir := newDeployment(t, tier.Advanced)
	d := open(t, dir)
	rec := agent(t, d, "clerk")
	// Advanced refuses to grant a write with no argument constraint...
	if _, _, err := d.Grants.Open(ctx, grant.OpenRequest{Grantee: rec, Requester: admin, Intent: "file notes",
		Scope: grant.Scope{{Tool: "memory.create_entities"}}, TTL: 30 * time.Minute}); grant.CodeOf(err) != grant.CodeConstraintsRequired {
		t.Fatalf("unconstrained write at advanced: %v", err)
	}
	// ...and grants it constrained.
	if _, _, err := d.Grants.Open(ctx, grant.OpenRequest{Grantee: rec, Requester: admin, Intent: "file notes",
		Scope: grant.Scope{{Tool: "memory.read_graph", Args: map[string]json.RawMessage{"namespace": json.RawMessage(`{"enum": ["agent"]}`)}},
			{Tool: "memory.create_entities", Args: map[string]json.RawMessage{"entities": json.RawMessage(`{"maxItems": 5}`)}}}, TTL: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	r, err := AssessDeployment(ctx, d, Options{Probe: probe()})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	wantControl(t, r, "ID-F1", Pass, "agent clerk: key")
	wantControl(t, r, "ID-A1", Pass, "agent clerk: newest x509-SVID lives 1h0m0s")
	wantControl(t, r, "ID-A2", Pass, "registered by "+admin)
	wantControl(t, r, "ID-O1", NotReachable, "code_digest sha256:abab")
	wantControl(t, r, "AC-A1", Pass, "longest-lived lives 30m0s")
	wantControl(t, r, "AC-A3", Pass, "")

	// Foundation in warden.yaml: the ceiling is 8h, and a 2h task opens.
	editConfig(t, dir, func(c *config.Config) {
		c.Tier = tier.Foundation
		c.Identity.X509SVIDMaxTTL, c.Identity.JWTSVIDMaxTTL, c.Identity.JoinTokenTTL = 0, 0, 0
	})
	before := assessDir(t, dir, probe())
	c := wantControl(t, before, "AC-A1", Fail, "tier foundation lets a grant live up to 8h0m0s")
	if strings.Contains(strings.Join(c.Evidence, " "), "2h0m0s") {
		t.Fatal("evidence names a 2h task before one exists")
	}
	d = open(t, dir)
	batch := agent(t, d, "batch") // registered at foundation
	long, _, err := d.Grants.Open(ctx, grant.OpenRequest{Grantee: batch, Requester: admin, Intent: "overnight batch",
		Scope: grant.Scope{{Tool: "memory.read_graph"}, {Tool: "memory.create_entities"}}, TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	after := assessDir(t, dir, probe())
	wantControl(t, after, "AC-A3", Fail, "allows memory.create_entities")
	wantControl(t, after, "AC-A1", Fail, "open task "+long.ID)
	wantControl(t, after, "AC-A1", Fail, "lives 2h0m0s, above 1h0m0s")
	wantControl(t, after, "AC-F1", Pass, "")
	if got := after.PhaseTier("access"); got != tier.Foundation {
		t.Errorf("access: %s, want foundation", TierName(got))
	}
}

// TestSandboxSettings: weakening the sandbox in warden.yaml, or on the
// host, changes the sandboxing phase and says why.
func TestSandboxSettings(t *testing.T) {
	dir := newDeployment(t, tier.Optimized)
	r := assessDir(t, dir, probe())
	if got := r.PhaseTier("sandbox"); got != tier.Optimized {
		t.Fatalf("sandbox: %s, want optimized", TierName(got))
	}
	// a host without seccomp
	r = assessDir(t, dir, probe(sandbox.MechSeccomp))
	wantControl(t, r, "SB-O1", Fail, "NOT in force on this host: seccomp")
	if got := r.PhaseTier("sandbox"); got != tier.Advanced {
		t.Errorf("without seccomp: %s, want advanced", TierName(got))
	}
	// a host without namespaces or Landlock: no filesystem confinement
	r = assessDir(t, dir, probe(sandbox.MechMountNS, sandbox.MechLandlockFS))
	wantControl(t, r, "SB-F1", Fail, "no filesystem confinement")
	if got := r.PhaseTier("sandbox"); got != 0 {
		t.Errorf("unconfined: %s, want none", TierName(got))
	}
	// writable host paths in the default profile
	editConfig(t, dir, func(c *config.Config) {
		c.Sandbox.Profiles = map[string]config.SandboxProfile{"default": {ReadWrite: []string{"/srv/data"}}}
	})
	r = assessDir(t, dir, probe())
	wantControl(t, r, "SB-O2", Fail, "host paths writable: /srv/data")
	if got := r.PhaseTier("sandbox"); got != tier.Advanced {
		t.Errorf("with a writable host path: %s, want advanced", TierName(got))
	}
	// a missing mechanism no longer refuses the launch
	editConfig(t, dir, func(c *config.Config) {
		c.Tier = tier.Foundation
		c.Memory.Untrusted = ""
		c.Identity.X509SVIDMaxTTL, c.Identity.JWTSVIDMaxTTL, c.Identity.JoinTokenTTL = 0, 0, 0
	})
	r = assessDir(t, dir, probe())
	wantControl(t, r, "SB-A1", Fail, "with a logged warning")
	if got := r.PhaseTier("sandbox"); got != tier.Foundation {
		t.Errorf("at tier foundation: %s, want foundation", TierName(got))
	}
}

// TestAuditMode: async audit fails the durability control, with where the
// mode came from; sync passes it.
func TestAuditMode(t *testing.T) {
	dir := newDeployment(t, tier.Foundation)
	r := assessDir(t, dir, probe())
	wantControl(t, r, "MON-A1", Fail, "audit mode async")
	editConfig(t, dir, func(c *config.Config) { c.Audit.Mode = tier.AuditSync })
	r = assessDir(t, dir, probe())
	wantControl(t, r, "MON-A1", Pass, "audit.mode sync")
	// foundation still only recommends revocation: the phase stays
	if got := r.PhaseTier("monitoring"); got != tier.Foundation {
		t.Errorf("monitoring: %s, want foundation", TierName(got))
	}
	wantControl(t, r, "MON-A2", Fail, "only recommends revocation")
}

// TestMissingLock: without warden.lock the supply-chain controls fail with
// that evidence.
func TestMissingLock(t *testing.T) {
	dir := newDeployment(t, tier.Advanced)
	if err := os.Remove(filepath.Join(string(dir), config.DefaultLockFile)); err != nil {
		t.Fatal(err)
	}
	r := assessDir(t, dir, probe())
	wantControl(t, r, "SUP-F1", Fail, "no usable lock")
	if got := r.PhaseTier("supply"); got != 0 {
		t.Errorf("supply without a lock: %s, want none", TierName(got))
	}
}

// TestAssessWhileServing: AssessDir works while another process holds the
// deployment open (the audit log's writer lock), and changes nothing.
func TestAssessWhileServing(t *testing.T) {
	ctx := context.Background()
	dir := newDeployment(t, tier.Advanced)
	d, err := setup.Open(ctx, dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before := d.Audit.Size()
	r, err := AssessDir(ctx, dir, Options{Probe: probe()})
	if err != nil {
		t.Fatalf("assessing a deployment that is open elsewhere: %v", err)
	}
	if r.Overall != tier.Advanced {
		t.Errorf("overall %s, want advanced", TierName(r.Overall))
	}
	if d.Audit.Size() != before {
		t.Errorf("the assessment wrote to the audit log: %d -> %d", before, d.Audit.Size())
	}
}

// TestNotInitialised: a directory that is not a deployment cannot be
// assessed, with a message saying what to do.
func TestNotInitialised(t *testing.T) {
	_, err := AssessDir(context.Background(), config.Dir(t.TempDir()), Options{Probe: probe()})
	if err == nil || !strings.Contains(err.Error(), "warden init") {
		t.Fatalf("err = %v, want one naming warden init", err)
	}
}

// TestHostProbe runs the real probe on this host.
func TestHostProbe(t *testing.T) {
	m, err := HostProbe(context.Background(), t.TempDir())
	if err != nil {
		t.Skipf("this host cannot launch a sandbox (%v); the assessment then falls back to the audit log's launches", err)
	}
	t.Logf("in force on this host: %s", m)
	dir := newDeployment(t, tier.Advanced)
	r, err := AssessDir(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Control("SB-F1")
	if !strings.Contains(strings.Join(c.Evidence, " "), "probe") {
		t.Errorf("SB-F1 evidence does not say it probed: %v", c.Evidence)
	}
}

// TestLiveGateway: in process, with the gateway started, the tool labels
// come from the gateway's live catalogue.
func TestLiveGateway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := newDeployment(t, tier.Advanced)
	d := open(t, dir)
	defer d.Close()
	gw, err := d.NewGateway(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.Start(ctx)
	if len(gw.Tools()) == 0 {
		t.Fatal("the gateway lists no tool")
	}
	rec := agent(t, d, "reader")
	if _, _, err := d.Grants.Open(ctx, grant.OpenRequest{Grantee: rec, Requester: admin, Intent: "read notes",
		Scope: grant.Scope{{Tool: "memory.search_nodes"}, {Tool: "memory.open_nodes"}}, TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	r, err := AssessDeployment(ctx, d, Options{Probe: probe()})
	if err != nil {
		t.Fatal(err)
	}
	// read tools in the live catalogue need no constraint
	wantControl(t, r, "AC-A3", Pass, "sensitive scope entries: 0, in open tasks: 1")
	wantControl(t, r, "MON-A1", Pass, "the running audit log")
}
