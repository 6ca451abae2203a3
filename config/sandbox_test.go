package config

import (
	"strings"
	"testing"
)

func TestSandboxProfilesParse(t *testing.T) {
	y := `trust_domain: example.org
tier: advanced
sandbox:
  profiles:
    fetch:
      ro: [/opt/tool]
      rw: [/var/cache/tool]
      env: {LANG: C.UTF-8}
      pass_env: [GITHUB_TOKEN]
      network: egress
      egress:
        - host: api.github.com
          ports: [443]
        - host: "*.githubusercontent.com"
          ports: [443]
        - host: internal.test
          ports: [8080]
          allow_private: true
      limits: {memory: 512MiB, cpu: 0.5, pids: 64, open_files: 256, wall_clock: 10m, tmp: 16MiB}
      user: "1234:1234"
`
	c, err := Parse(strings.NewReader(y))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Sandbox.Profile("fetch")
	if !ok {
		t.Fatal("profile fetch missing")
	}
	if p.Limits.Memory != 512<<20 || p.Limits.Tmp != 16<<20 || p.Limits.Pids != 64 || p.Network != NetworkEgress || len(p.Egress) != 3 {
		t.Fatalf("parsed %+v", p)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "memory: 512MiB") {
		t.Fatalf("marshalled:\n%s", out)
	}
}

func TestSandboxProfileRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    SandboxProfile
		want string
	}{
		{"relative", SandboxProfile{ReadOnly: []string{"opt"}}, "not absolute"},
		{"unclean", SandboxProfile{ReadOnly: []string{"/opt/../etc"}}, "not clean"},
		{"root", SandboxProfile{ReadWrite: []string{"/"}}, "whole host"},
		{"proc", SandboxProfile{ReadOnly: []string{"/proc/1"}}, "provides /proc"},
		{"tmp", SandboxProfile{ReadWrite: []string{"/tmp"}}, "private /tmp"},
		{"dup", SandboxProfile{ReadOnly: []string{"/opt"}, ReadWrite: []string{"/opt"}}, "already listed"},
		{"network", SandboxProfile{Network: "host"}, "want none or egress"},
		{"egress without rules", SandboxProfile{Network: NetworkEgress}, "at least one"},
		{"rules without egress", SandboxProfile{Egress: []EgressRule{{Host: "a.example", Ports: []int{443}}}}, "need network"},
		{"bad host", SandboxProfile{Network: NetworkEgress, Egress: []EgressRule{{Host: "localhost", Ports: []int{80}}}}, "DNS name"},
		{"upper host", SandboxProfile{Network: NetworkEgress, Egress: []EgressRule{{Host: "API.example.com", Ports: []int{80}}}}, "DNS name"},
		{"no ports", SandboxProfile{Network: NetworkEgress, Egress: []EgressRule{{Host: "a.example"}}}, "list the allowed ports"},
		{"port", SandboxProfile{Network: NetworkEgress, Egress: []EgressRule{{Host: "a.example", Ports: []int{70000}}}}, "not a TCP port"},
		{"env", SandboxProfile{Env: map[string]string{"A=B": "x"}}, "not a valid variable"},
		{"memory", SandboxProfile{Limits: SandboxLimits{Memory: 1024}}, "at least 16MiB"},
		{"negative", SandboxProfile{Limits: SandboxLimits{Pids: -1}}, "negative"},
		{"user", SandboxProfile{User: "root;x"}, "account name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	ok := SandboxProfile{Network: NetworkEgress, Egress: []EgressRule{{Host: "10.0.0.5", Ports: []int{443}}, {Host: "*.example.com", Ports: []int{443}}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "1024": 1024, "1KiB": 1024, "64MiB": 64 << 20, "2G": 2e9, "1 GiB": 1 << 30} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5G", "x", "99999999999999TiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", bad)
		}
	}
	if s := ByteSize(1536 << 10).String(); s != "1536KiB" {
		t.Errorf("String = %q", s)
	}
}
