package posture

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/warden-run/warden/tier"
)

//go:embed catalogue.yaml
var catalogueYAML []byte

//go:embed sources/frameworks.yaml
var frameworksYAML []byte

// Phase is one of the eight phases of the catalogue.
type Phase struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name" json:"name"`
}

// Control is one entry of the catalogue.
type Control struct {
	ID    string    `yaml:"id" json:"id"`
	Phase string    `yaml:"phase" json:"phase"`
	Tier  tier.Tier `yaml:"tier" json:"tier"`
	Title string    `yaml:"title" json:"title"`
	// Check names the Go function that evaluates the control (checks.go).
	Check string `yaml:"check" json:"check"`
	// Fix is the change that makes the check pass.
	Fix string `yaml:"fix" json:"fix"`
	// Maps cites item ids per framework key (see Frameworks).
	Maps map[string][]string `yaml:"maps" json:"maps"`
}

// Framework is a framework controls are mapped to, with every item id a
// mapping may cite and where the ids were taken from.
type Framework struct {
	Key     string            `json:"key"`
	Name    string            `yaml:"name" json:"name"`
	Source  string            `yaml:"source" json:"source"`
	License string            `yaml:"license" json:"license"`
	Stages  map[string]string `yaml:"stages,omitempty" json:"stages,omitempty"`
	Items   []Item            `yaml:"items" json:"items"`
}

// Item is one framework item.
type Item struct {
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title,omitempty" json:"title,omitempty"`
}

// Item returns the framework's item with the given id.
func (f *Framework) Item(id string) (Item, bool) {
	for _, it := range f.Items {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

// Catalogue is the controls catalogue and the frameworks it maps to.
type Catalogue struct {
	Phases     []Phase
	Controls   []Control
	Frameworks map[string]*Framework
}

// FrameworkKeys are the keys --framework accepts, in report order.
var frameworkOrder = []string{"nist-800-207", "cisa", "owasp-llm", "owasp-agentic", "atlas", "ai-rmf", "eu-ai-act", "hipaa", "pci", "soc2"}

// FrameworkKeys returns the framework keys in report order.
func FrameworkKeys() []string { return slices.Clone(frameworkOrder) }

// LoadCatalogue parses the embedded catalogue and frameworks and checks
// them: every control in a known phase, at a tier, with a known check, a
// fix and at least one mapping, and every mapped id listed by its framework.
func LoadCatalogue() (*Catalogue, error) {
	return parseCatalogue(catalogueYAML, frameworksYAML)
}

func decodeStrict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func parseCatalogue(cat, fw []byte) (*Catalogue, error) {
	var doc struct {
		Phases   []Phase   `yaml:"phases"`
		Controls []Control `yaml:"controls"`
	}
	if err := decodeStrict(cat, &doc); err != nil {
		return nil, fmt.Errorf("controls catalogue: %w", err)
	}
	var fdoc struct {
		Frameworks map[string]*Framework `yaml:"frameworks"`
	}
	if err := decodeStrict(fw, &fdoc); err != nil {
		return nil, fmt.Errorf("frameworks list: %w", err)
	}
	c := &Catalogue{Phases: doc.Phases, Controls: doc.Controls, Frameworks: fdoc.Frameworks}
	for k, f := range c.Frameworks {
		f.Key = k
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Catalogue) validate() error {
	var errs []error
	for _, k := range frameworkOrder {
		if c.Frameworks[k] == nil {
			errs = append(errs, fmt.Errorf("framework %s is not listed in sources/frameworks.yaml", k))
		}
	}
	for k, f := range c.Frameworks {
		if !slices.Contains(frameworkOrder, k) {
			errs = append(errs, fmt.Errorf("framework %s is listed but has no place in the report order", k))
		}
		if f.Source == "" || f.License == "" {
			errs = append(errs, fmt.Errorf("framework %s: say where its ids come from (source) and under what terms (license)", k))
		}
		seen := map[string]bool{}
		for _, it := range f.Items {
			if it.ID == "" || seen[it.ID] {
				errs = append(errs, fmt.Errorf("framework %s: empty or duplicate item id %q", k, it.ID))
			}
			seen[it.ID] = true
		}
	}
	phases := map[string]bool{}
	for _, p := range c.Phases {
		phases[p.ID] = true
	}
	if len(c.Phases) != 8 {
		errs = append(errs, fmt.Errorf("the catalogue has %d phases, want 8", len(c.Phases)))
	}
	ids := map[string]bool{}
	cover := map[string]map[tier.Tier]bool{}
	for _, ctl := range c.Controls {
		where := "control " + ctl.ID
		switch {
		case ctl.ID == "" || ids[ctl.ID]:
			errs = append(errs, fmt.Errorf("%s: empty or duplicate id", where))
		case !phases[ctl.Phase]:
			errs = append(errs, fmt.Errorf("%s: unknown phase %q", where, ctl.Phase))
		case !ctl.Tier.Valid():
			errs = append(errs, fmt.Errorf("%s: no tier", where))
		case ctl.Title == "" || ctl.Fix == "":
			errs = append(errs, fmt.Errorf("%s: title and fix are required", where))
		case checks[ctl.Check] == nil:
			errs = append(errs, fmt.Errorf("%s: unknown check %q", where, ctl.Check))
		case len(ctl.Maps) < 3:
			errs = append(errs, fmt.Errorf("%s: map it to at least three frameworks", where))
		}
		ids[ctl.ID] = true
		if cover[ctl.Phase] == nil {
			cover[ctl.Phase] = map[tier.Tier]bool{}
		}
		cover[ctl.Phase][ctl.Tier] = true
		for k, list := range ctl.Maps {
			f := c.Frameworks[k]
			if f == nil {
				errs = append(errs, fmt.Errorf("%s: unknown framework %q", where, k))
				continue
			}
			if len(list) == 0 {
				errs = append(errs, fmt.Errorf("%s: framework %s maps to nothing", where, k))
			}
			for _, id := range list {
				if _, ok := f.Item(id); !ok {
					errs = append(errs, fmt.Errorf("%s: %s has no item %q (sources/frameworks.yaml lists its ids)", where, k, id))
				}
			}
		}
	}
	for _, p := range c.Phases {
		for _, t := range tier.All {
			if !cover[p.ID][t] {
				errs = append(errs, fmt.Errorf("phase %s has no %s control", p.ID, t))
			}
		}
	}
	return errors.Join(errs...)
}

// Phase returns the phase with the given id.
func (c *Catalogue) Phase(id string) (Phase, bool) {
	for _, p := range c.Phases {
		if p.ID == id {
			return p, true
		}
	}
	return Phase{}, false
}

// controlsOf returns the controls of a phase, by tier then id.
func (c *Catalogue) controlsOf(phase string) []Control {
	var out []Control
	for _, ctl := range c.Controls {
		if ctl.Phase == phase {
			out = append(out, ctl)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tier < out[j].Tier })
	return out
}
