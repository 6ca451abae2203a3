package posture

import (
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/sandbox"
	"github.com/warden-run/warden/tier"
)

// TestChecksOverSnapshot runs single checks over a snapshot built by hand:
// what the audit log recorded of past launches counts against the host's
// probe, and values from warden.yaml show in the evidence.
func TestChecksOverSnapshot(t *testing.T) {
	all, _ := probe()(t.Context())
	launch := func(up string, off ...string) launchRecord {
		m, _ := probe(off...)(t.Context())
		return launchRecord{upstream: up, at: time.Unix(1700000000, 0), mech: m}
	}
	base := func() *snapshot {
		c := config.Default("warden.local", tier.Advanced)
		return &snapshot{cfg: c, mech: &all, mechFrom: "a test"}
	}
	for _, tc := range []struct {
		name, check string
		edit        func(*snapshot)
		pass        bool
		evidence    string
	}{
		{"probe all on", "sandbox_egress", func(*snapshot) {}, true, "in force: net_ns"},
		{"a past launch without egress confinement", "sandbox_egress", func(s *snapshot) {
			s.audit.launches = []launchRecord{launch("files", sandbox.MechEgress)}
		}, false, "launch of files at 2023-11-14T22:13:20Z ran without egress_confined"},
		{"a past launch with no filesystem confinement", "sandbox_filesystem", func(s *snapshot) {
			s.audit.launches = []launchRecord{launch("notes", sandbox.MechMountNS, sandbox.MechLandlockFS)}
		}, false, "launch of notes at 2023-11-14T22:13:20Z ran with no filesystem confinement"},
		{"mechanisms unknown", "sandbox_limits", func(s *snapshot) { s.mech = nil }, false, "sandbox mechanisms unknown"},
		{"allow_secrets matching everything", "secret_detection", func(s *snapshot) {
			s.cfg.Inspect.AllowSecrets = []string{".*"}
		}, false, `inspect.allow_secrets ".*" exempts every value`},
		{"allow_secrets matching fixtures only", "secret_detection", func(s *snapshot) {
			s.cfg.Inspect.AllowSecrets = []string{"^test-fixture-"}
		}, true, "exempts only matching values"},
		{"an allowed top-level domain", "exfiltration_blocked", func(s *snapshot) {
			s.cfg.Inspect.AllowHosts = []string{"*.com"}
		}, false, `inspect.allow_hosts "*.com" allows a whole top-level domain`},
		{"http upstream", "upstreams_tls", func(s *snapshot) {
			s.cfg.Gateway.Upstreams = append(s.cfg.Gateway.Upstreams, config.Upstream{Name: "crm", HTTP: &config.HTTPUpstream{URL: "http://crm.internal/mcp"}})
		}, false, "upstream crm: http://crm.internal/mcp is not TLS"},
		{"unguarded memory server", "memory_provenance", func(s *snapshot) {
			s.cfg.Gateway.Upstreams = append(s.cfg.Gateway.Upstreams, config.Upstream{Name: "kg", Stdio: &config.StdioUpstream{Command: "npx", Args: []string{"@modelcontextprotocol/server-memory"}}})
		}, false, "upstream kg looks like a memory server"},
		{"guarded memory server", "memory_provenance", func(s *snapshot) {
			s.cfg.Gateway.Upstreams = append(s.cfg.Gateway.Upstreams, config.Upstream{Name: "kg", Guard: "memory", Stdio: &config.StdioUpstream{Command: "npx", Args: []string{"@modelcontextprotocol/server-memory"}}})
		}, true, "upstream kg: third-party memory guarded"},
		{"slow relisting", "rugpull_detection", func(s *snapshot) { s.cfg.Supply.RelistInterval = time.Hour }, false, "only every 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			r := checks[tc.check](s, Control{Tier: tier.Advanced})
			if r.pass != tc.pass {
				t.Errorf("pass = %v, want %v: %v", r.pass, tc.pass, r.evidence)
			}
			if !strings.Contains(strings.Join(r.evidence, "\n"), tc.evidence) {
				t.Errorf("evidence lacks %q:\n%s", tc.evidence, strings.Join(r.evidence, "\n"))
			}
		})
	}
}
