package config

import (
	"strings"
	"testing"
	"time"
)

func TestSupplyValidation(t *testing.T) {
	cases := []struct {
		name string
		s    Supply
		want string
	}{
		{"defaults", Supply{}, ""},
		{"short relist", Supply{RelistInterval: time.Second}, "at least 10s"},
		{"bad severity", Supply{MaxSeverity: "severe"}, "max_severity"},
		{"both signatures", Supply{Signatures: map[string]SupplySignature{"x": {Minisign: &SupplyMinisign{"k", "s"}, Sigstore: &SupplySigstore{}}}}, "exactly one"},
		{"incomplete sigstore", Supply{Signatures: map[string]SupplySignature{"x": {Sigstore: &SupplySigstore{Bundle: "b"}}}}, "required"},
		{"minisign over npm", Supply{Signatures: map[string]SupplySignature{"x": {Artifact: "npm", Minisign: &SupplyMinisign{"k", "s"}}}}, "provenance"},
	}
	for _, c := range cases {
		err := c.s.validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	s := Supply{}
	if s.LockPath("/d") != "/d/warden.lock" || s.Relist() != DefaultRelistInterval || s.Severity() != "high" {
		t.Fatal("defaults")
	}
}
