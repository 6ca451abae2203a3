package config

import (
	"bytes"
	"testing"

	"github.com/warden-run/warden/tier"
)

// FuzzParse: a configuration Warden accepts renders (Marshal) to YAML it
// accepts again and renders the same (nil and empty lists render alike),
// and bad YAML is an error, never a panic.
func FuzzParse(f *testing.F) {
	for _, tr := range tier.All {
		b, err := Default("example.org", tr).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`trust_domain: example.org
tier: advanced
sandbox:
  profiles:
    fetch:
      ro: [/opt/tool]
      network: egress
      egress:
        - host: "*.githubusercontent.com"
          ports: [443]
      limits: {memory: 512MiB, cpu: 0.5, pids: 64, open_files: 256, wall_clock: 10m, tmp: 16MiB}
      user: "1234:1234"
inspect:
  injection_threshold: 0.6
  actions: {pii: block}
  allow_hosts: [api.example.com]
  volume_budget_bytes: 1048576
`))
	f.Add([]byte("trust_domain: example.org\ntier: optimized\nidentity: {x509_svid_ttl: 30m}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("accepted configuration does not render: %v", err)
		}
		again, err := Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("rendered configuration is refused: %v\n%s", err, b)
		}
		b2, err := again.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the configuration:\n%s\n%s", b, b2)
		}
	})
}
