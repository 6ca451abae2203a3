package config

import (
	"strings"
	"testing"

	"github.com/warden-run/warden/tier"
)

func TestAuditSettings(t *testing.T) {
	base := "trust_domain: example.org\n"
	cases := []struct {
		name, yaml string
		wantErr    string
		wantMode   tier.AuditMode
	}{
		{"foundation defaults to async", base + "tier: foundation\n", "", tier.AuditAsync},
		{"advanced defaults to sync", base + "tier: advanced\n", "", tier.AuditSync},
		{"foundation may tighten to sync", base + "tier: foundation\naudit:\n  mode: sync\n", "", tier.AuditSync},
		{"advanced may not loosen to async", base + "tier: advanced\naudit:\n  mode: async\n", "weaker than tier advanced", ""},
		{"optimized may not loosen to async", base + "tier: optimized\naudit:\n  mode: async\n", "weaker than tier optimized", ""},
		{"unknown mode", base + "tier: foundation\naudit:\n  mode: eventually\n", "audit.mode", ""},
		{"checkpoint interval too short", base + "tier: foundation\naudit:\n  checkpoint_interval: 1ms\n", "checkpoint_interval", ""},
		{"relative file sink", base + "tier: foundation\naudit:\n  publish:\n  - type: file\n    path: cp.txt\n", "must be absolute", ""},
		{"bad http sink", base + "tier: foundation\naudit:\n  publish:\n  - type: http\n    url: ftp://x\n", "http(s)", ""},
		{"syslog half set", base + "tier: foundation\naudit:\n  publish:\n  - type: syslog\n    network: udp\n", "both network and address", ""},
		{"unknown sink", base + "tier: foundation\naudit:\n  publish:\n  - type: carrier-pigeon\n", "carrier-pigeon", ""},
		{"origin with a space", base + "tier: foundation\naudit:\n  origin: my log\n", "audit.origin", ""},
		{"good sinks", base + "tier: advanced\naudit:\n  checkpoint_interval: 5s\n  publish:\n  - type: file\n    path: /mnt/witness/cp\n  - type: http\n    url: https://siem.example.org/cp\n  - type: syslog\n", "", tier.AuditSync},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(c.yaml))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Audit.EffectiveMode(cfg.Tier); got != c.wantMode {
				t.Errorf("mode %s, want %s", got, c.wantMode)
			}
			if got := cfg.Audit.OriginFor(cfg.TrustDomain); got != "example.org/warden/audit" {
				t.Errorf("origin %q", got)
			}
		})
	}
}
