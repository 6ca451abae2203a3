package config

import (
	"strings"
	"testing"

	"github.com/warden-run/warden/tier"
)

func TestInspectValidate(t *testing.T) {
	cases := []struct {
		name string
		c    Inspect
		err  string // "" means valid
	}{
		{"empty", Inspect{}, ""},
		{"full", Inspect{InjectionThreshold: 0.5, Actions: map[string]tier.FindingAction{"secret": tier.ActionBlock, "pii": tier.ActionRedact},
			AllowHosts: []string{"api.example.com", "*.corp.example"}, AllowSecrets: []string{`^test_`}, VolumeBudgetBytes: 1 << 20}, ""},
		{"threshold too high", Inspect{InjectionThreshold: 1}, "injection_threshold"},
		{"unknown kind", Inspect{Actions: map[string]tier.FindingAction{"secrets": tier.ActionBlock}}, "unknown finding kind"},
		{"unknown action", Inspect{Actions: map[string]tier.FindingAction{"pii": "drop"}}, "not an action"},
		{"url as host", Inspect{AllowHosts: []string{"https://api.example.com"}}, "allow_hosts"},
		{"bad wildcard", Inspect{AllowHosts: []string{"api.*.com"}}, "allow_hosts"},
		{"bad regexp", Inspect{AllowSecrets: []string{"("}}, "allow_secrets"},
		{"negative budget", Inspect{VolumeBudgetBytes: -1}, "volume_budget_bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.c.validate()
			switch {
			case c.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("error %v, want one mentioning %q", err, c.err)
			}
		})
	}
}

func TestInspectSectionParses(t *testing.T) {
	y := `trust_domain: example.org
tier: advanced
inspect:
  injection_threshold: 0.6
  actions:
    pii: block
  allow_hosts: [api.example.com]
  volume_budget_bytes: 1048576
`
	c, err := Parse(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	if c.Inspect.Actions["pii"] != tier.ActionBlock || c.Inspect.VolumeBudgetBytes != 1<<20 || c.Inspect.AllowHosts[0] != "api.example.com" {
		t.Errorf("parsed %+v", c.Inspect)
	}
	if _, err := Parse(strings.NewReader(y + "  unknown_key: 1\n")); err == nil {
		t.Error("unknown inspect key accepted")
	}
}
