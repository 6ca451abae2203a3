package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/tier"
)

func TestDefaultRoundTrips(t *testing.T) {
	for _, tr := range tier.All {
		c := Default("example.org", tr)
		path := filepath.Join(t.TempDir(), FileName)
		if err := c.Save(path); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatalf("%v: %v", tr, err)
		}
		if got.Tier != tr || got.TrustDomain != "example.org" || got.Identity != c.Identity {
			t.Errorf("%v: round trip changed the configuration: %+v", tr, got)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("config mode %v", fi.Mode().Perm())
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty"},
		{"no tier", "trust_domain: example.org\n", "tier is missing"},
		{"unknown tier", "trust_domain: example.org\ntier: gold\n", "unknown tier"},
		{"typo in key", "trust_domain: example.org\ntier: foundation\nidentiy: {}\n", "identiy"},
		{"bad trust domain", "trust_domain: Example.ORG/x\ntier: foundation\n", "trust_domain"},
		{"ttl over tier ceiling", "trust_domain: example.org\ntier: advanced\nidentity:\n  x509_svid_max_ttl: 48h\n", "exceeds its ceiling"},
		{"ttl over max", "trust_domain: example.org\ntier: foundation\nidentity:\n  x509_svid_ttl: 2h\n  x509_svid_max_ttl: 1h\n", "x509_svid_ttl"},
		{"negative", "trust_domain: example.org\ntier: foundation\nidentity:\n  jwt_svid_ttl: -1m\n", "must be positive"},
		{"bad listen", "trust_domain: example.org\ntier: foundation\ncontrol_plane:\n  listen: nowhere\n", "control_plane.listen"},
		{"not yaml", "trust_domain: [\n", "parsing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestTierFillsUnsetSettings(t *testing.T) {
	c, err := Parse(strings.NewReader("trust_domain: example.org\ntier: optimized\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := tier.For(tier.Optimized)
	if c.Identity.X509SVIDMaxTTL != p.X509SVIDMaxTTL || c.Identity.JoinTokenTTL != p.JoinTokenTTL {
		t.Errorf("identity = %+v, want preset ceilings", c.Identity)
	}
	if c.Identity.JWTSVIDTTL != 5*time.Minute {
		t.Errorf("jwt ttl = %v", c.Identity.JWTSVIDTTL)
	}
}
