package posture

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/warden-run/warden/tier"
)

// compileSchema compiles a JSON Schema file, asserting formats.
func compileSchema(t *testing.T, path string, doc []byte) *jsonschema.Schema {
	t.Helper()
	if doc == nil {
		var err error
		if doc, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, v); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("compiling %s: %v", path, err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, name string, out []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%s output is not JSON: %v", name, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s output does not validate:\n%v", name, err)
	}
}

// reports are the reports the format tests render: a deployment with
// failures, and the same seen through one framework.
func reports(t *testing.T) map[string]*Report {
	t.Helper()
	r := assessDir(t, newDeployment(t, tier.Advanced), probe(tierSeccomp))
	f, err := r.Filter("hipaa")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*Report{"full": r, "hipaa": f}
}

const tierSeccomp = "seccomp"

func render(t *testing.T, r *Report, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := r.Write(&b, format); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	if b.Len() == 0 {
		t.Fatalf("%s: empty output", format)
	}
	return b.Bytes()
}

func TestFormats(t *testing.T) {
	jsonS := compileSchema(t, "report.schema.json", ReportSchema)
	sarifS := compileSchema(t, "sources/sarif-schema-2.1.0.json", nil)
	oscalS := compileSchema(t, "sources/oscal_assessment-results_schema.extract.json", nil)
	for name, r := range reports(t) {
		t.Run(name, func(t *testing.T) {
			validate(t, jsonS, "json", render(t, r, "json"))
			validate(t, sarifS, "sarif", render(t, r, "sarif"))
			validate(t, oscalS, "oscal", render(t, r, "oscal"))

			text := string(render(t, r, "table"))
			md := string(render(t, r, "markdown"))
			html := string(render(t, r, "html"))
			for _, s := range []string{"Access scoping", "Supply chain and governance"} {
				for f, out := range map[string]string{"table": text, "markdown": md, "html": html} {
					if !strings.Contains(out, s) {
						t.Errorf("%s output lacks %q", f, s)
					}
				}
			}
			// every failing control is in every human format, with its fix
			for _, c := range r.Failing() {
				for f, out := range map[string]string{"table": text, "markdown": md} {
					if !strings.Contains(out, c.Control.ID) || !strings.Contains(out, c.Fix) {
						t.Errorf("%s output lacks %s or its fix", f, c.Control.ID)
					}
				}
			}
			// self-contained: no external script, style, image or font
			if m := regexp.MustCompile(`(?i)<(script|link|img|iframe)\b|url\(|@import`).FindString(html); m != "" {
				t.Errorf("the HTML report loads something: %q", m)
			}
			if !strings.HasPrefix(html, "<!DOCTYPE html>") {
				t.Error("the HTML report is not a page")
			}
		})
	}
}

// TestFilter: a framework view keeps only the controls mapped to it, and
// the tiers of the whole catalogue.
func TestFilter(t *testing.T) {
	r := assessDir(t, newDeployment(t, tier.Advanced), probe())
	for _, fw := range FrameworkKeys() {
		f, err := r.Filter(fw)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, ph := range f.Phases {
			if ph.Reached != r.Phases[i].Reached {
				t.Errorf("%s: phase %s tier changed in the view", fw, ph.Phase.ID)
			}
			for _, c := range ph.Controls {
				n++
				if len(c.Control.Maps[fw]) == 0 {
					t.Errorf("%s view shows %s, which does not map to it", fw, c.Control.ID)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s view is empty", fw)
		}
	}
	if _, err := r.Filter("iso-27001"); err == nil {
		t.Error("an unknown framework was accepted")
	}
	var out struct {
		Phases []struct {
			Controls []struct {
				Maps map[string][]string `json:"maps"`
			} `json:"controls"`
		} `json:"phases"`
	}
	h, _ := r.Filter("hipaa")
	if err := json.Unmarshal(render(t, h, "json"), &out); err != nil {
		t.Fatal(err)
	}
	for _, ph := range out.Phases {
		for _, c := range ph.Controls {
			if len(c.Maps) != 1 || c.Maps["hipaa"] == nil {
				t.Errorf("hipaa view JSON maps %v", c.Maps)
			}
		}
	}
}

// TestOSCALShape: one finding per control, satisfied exactly when it
// passes, pointing at its observation.
func TestOSCALShape(t *testing.T) {
	r := reports(t)["full"]
	var doc struct {
		AR struct {
			Results []struct {
				Observations []struct {
					UUID string `json:"uuid"`
				} `json:"observations"`
				Findings []struct {
					Target struct {
						ID     string `json:"target-id"`
						Status struct {
							State string `json:"state"`
						} `json:"status"`
					} `json:"target"`
					Related []struct {
						UUID string `json:"observation-uuid"`
					} `json:"related-observations"`
				} `json:"findings"`
			} `json:"results"`
		} `json:"assessment-results"`
	}
	if err := json.Unmarshal(render(t, r, "oscal"), &doc); err != nil {
		t.Fatal(err)
	}
	res := doc.AR.Results[0]
	obs := map[string]bool{}
	for _, o := range res.Observations {
		obs[o.UUID] = true
	}
	n := 0
	for _, f := range res.Findings {
		c, ok := r.Control(f.Target.ID)
		if !ok {
			t.Fatalf("finding for unknown control %s", f.Target.ID)
		}
		if (c.Status == Pass) != (f.Target.Status.State == "satisfied") {
			t.Errorf("%s: state %s for status %s", c.Control.ID, f.Target.Status.State, c.Status)
		}
		if len(f.Related) != 1 || !obs[f.Related[0].UUID] {
			t.Errorf("%s: no observation", c.Control.ID)
		}
		n++
	}
	cat, _ := LoadCatalogue()
	if n != len(cat.Controls) {
		t.Errorf("%d findings for %d controls", n, len(cat.Controls))
	}
}

func TestUnknownFormat(t *testing.T) {
	r := assessDir(t, newDeployment(t, tier.Foundation), probe())
	if err := r.Write(&bytes.Buffer{}, "pdf"); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Errorf("err = %v", err)
	}
}
