package posture

import (
	"bytes"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/warden-run/warden/tier"
)

// TestCatalogue: the embedded catalogue loads; every control has
// mappings, and every mapped id is listed by its framework with the source
// it came from (LoadCatalogue checks each; this test says so explicitly).
func TestCatalogue(t *testing.T) {
	c, err := LoadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Phases) != 8 {
		t.Fatalf("%d phases", len(c.Phases))
	}
	used := map[string]bool{}
	for _, ctl := range c.Controls {
		if len(ctl.Maps) < 3 {
			t.Errorf("%s maps to %d frameworks", ctl.ID, len(ctl.Maps))
		}
		for k, ids := range ctl.Maps {
			f := c.Frameworks[k]
			if f == nil {
				t.Fatalf("%s: framework %s", ctl.ID, k)
			}
			for _, id := range ids {
				if _, ok := f.Item(id); !ok {
					t.Errorf("%s: %s %q is not a listed id", ctl.ID, k, id)
				}
				used[k] = true
			}
		}
		if checks[ctl.Check] == nil {
			t.Errorf("%s: no check %s", ctl.ID, ctl.Check)
		}
	}
	for _, k := range FrameworkKeys() {
		f := c.Frameworks[k]
		if !used[k] {
			t.Errorf("no control maps to %s", k)
		}
		if !strings.HasPrefix(f.Source, "http") || f.License == "" {
			t.Errorf("%s: source %q, license %q", k, f.Source, f.License)
		}
	}
	// every check in the registry is used by some control
	for name := range checks {
		found := false
		for _, ctl := range c.Controls {
			found = found || ctl.Check == name
		}
		if !found {
			t.Errorf("check %s is not used by any control", name)
		}
	}
	// the tiers and phases of the design table are all covered
	for _, p := range c.Phases {
		for _, tr := range tier.All {
			n := 0
			for _, ctl := range c.controlsOf(p.ID) {
				if ctl.Tier == tr {
					n++
				}
			}
			if n == 0 {
				t.Errorf("phase %s has no %s control", p.ID, tr)
			}
		}
	}
}

// TestCatalogueRefuses: the catalogue checks catch what would make a
// report wrong.
func TestCatalogueRefuses(t *testing.T) {
	ok := func(s string) string { return s }
	for _, tc := range []struct {
		name, want string
		edit       func(string) string
	}{
		{"unknown framework id", `has no item "LLM11"`, func(s string) string {
			return strings.Replace(s, "owasp-llm: [LLM06]", "owasp-llm: [LLM11]", 1)
		}},
		{"unknown check", `unknown check "nope"`, func(s string) string {
			return strings.Replace(s, "check: agents_enrolled", "check: nope", 1)
		}},
		{"unknown framework", `unknown framework "iso"`, func(s string) string {
			return strings.Replace(s, "      nist-800-207: [tenet-6]\n      cisa: [identity.authentication, identity.identity-stores]", "      iso: [A.5]\n      cisa: [identity.authentication, identity.identity-stores]", 1)
		}},
		{"unknown key", "field fixes not found", func(s string) string {
			return strings.Replace(s, "    fix: ", "    fixes: ", 1)
		}},
		{"duplicate id", "duplicate id", func(s string) string {
			return strings.Replace(s, "id: ID-F2", "id: ID-F1", 1)
		}},
		{"as shipped", "", ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCatalogue([]byte(tc.edit(string(catalogueYAML))), frameworksYAML)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSchemasRefuse: the schemas the outputs are validated against do
// refuse broken documents (so a passing validation means something).
func TestSchemasRefuse(t *testing.T) {
	for _, tc := range []struct{ schema, doc string }{
		{"report.schema.json", `{"format":"warden-assessment/v1"}`},
		{"sources/sarif-schema-2.1.0.json", `{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`},
		{"sources/oscal_assessment-results_schema.extract.json", `{"assessment-results":{"uuid":"not-a-uuid","metadata":{},"import-ap":{"href":"#x"},"results":[]}}`},
		{"sources/oscal_assessment-results_schema.extract.json", `{"assessment-results":{"uuid":"4f7a2c2e-8d1b-4c3a-9e2f-1a2b3c4d5e6f","metadata":{"title":"t","last-modified":"2026-01-01T00:00:00Z","version":"1","oscal-version":"1.0.4"},"import-ap":{"href":"#x"},"results":[{"uuid":"4f7a2c2e-8d1b-4c3a-9e2f-1a2b3c4d5e6f","title":"t","description":"d","start":"2026-01-01T00:00:00Z","reviewed-controls":{"control-selections":[{}]},"findings":[{"uuid":"4f7a2c2e-8d1b-4c3a-9e2f-1a2b3c4d5e6f","title":"t","description":"d","target":{"type":"objective-id","target-id":"ID-F1","status":{"state":"maybe"}}}]}]}}`},
	} {
		var doc []byte
		if tc.schema == "report.schema.json" {
			doc = ReportSchema
		}
		s := compileSchema(t, tc.schema, doc)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tc.doc)))
		if err != nil {
			t.Fatal(err)
		}
		if s.Validate(v) == nil {
			t.Errorf("%s accepted %s", tc.schema, tc.doc)
		}
	}
}

// FuzzParseCatalogue: a catalogue edited by hand never panics the loader.
func FuzzParseCatalogue(f *testing.F) {
	f.Add(catalogueYAML)
	f.Add([]byte("phases: []\ncontrols: [{id: X}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseCatalogue(b, frameworksYAML)
	})
}

// FuzzMechFromAttrs: a launch event's attributes, read from the audit log,
// never panic the parser.
func FuzzMechFromAttrs(f *testing.F) {
	f.Add("mech.seccomp", "on:filter")
	f.Add("mech.", ":")
	f.Fuzz(func(t *testing.T, k, v string) {
		m := mechFromAttrs(map[string]string{k: v})
		name, ok := strings.CutPrefix(k, "mech.")
		state, _, _ := strings.Cut(v, ":")
		switch {
		case !ok && len(m.InForce) != 0:
			t.Fatalf("%q=%q read as a mechanism", k, v)
		case ok && m.Has(name) != (state == "on"):
			t.Fatalf("%q=%q -> in force %v", k, v, m.Has(name))
		}
	})
}
