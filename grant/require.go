package grant

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/warden-run/warden/tier"
)

// Labeler knows the risk labels of the tools behind the gateway. A grant
// Policy that implements it lets the tier's RequireConstraints tell a
// read-only tool, which may be granted without argument constraints, from
// one that writes, sends data out or destroys.
type Labeler interface {
	ToolLabels(tool string) (labels []string, known bool)
}

// sensitiveLabels are the labels whose tools a tier with RequireConstraints
// grants only with argument constraints.
var sensitiveLabels = []string{"writes", "egress", "destructive"}

// requireConstraints refuses, at a tier that requires them, an entry with no
// real argument constraint for a tool that writes, sends data out or
// destroys: one labelled so, one whose labels are not known (an unlabelled
// tool carries every label), or a pattern, which could match one.
func (s *Service) requireConstraints(p tier.Preset, sc Scope) error {
	if !p.RequireConstraints {
		return nil
	}
	lab, _ := s.policy.(Labeler)
	for _, e := range sc {
		if constrained(e) {
			continue
		}
		if strings.ContainsAny(e.Tool, "*?[\\") {
			return errorf(CodeConstraintsRequired, "tier %s grants tools that write, send data out or destroy only with argument constraints; %q is a pattern, which could match one: name the tools, or constrain their arguments", p.Tier, e.Tool)
		}
		var labels []string
		known := false
		if lab != nil {
			labels, known = lab.ToolLabels(e.Tool)
		}
		if !known {
			return errorf(CodeConstraintsRequired, "tier %s grants tools that write, send data out or destroy only with argument constraints; the risk labels of %s are not known (no upstream lists it and warden.yaml does not label it), so it counts as all of them: constrain its arguments", p.Tier, e.Tool)
		}
		for _, l := range sensitiveLabels {
			if slices.Contains(labels, l) {
				return errorf(CodeConstraintsRequired, "tier %s grants tools that write, send data out or destroy only with argument constraints; %s is labelled %s: constrain its arguments (const, enum, pattern, maximum, maxLength, path_within, url_host_in, ...)", p.Tier, e.Tool, strings.Join(labels, ", "))
			}
		}
	}
	return nil
}

// constrained reports whether an entry constrains some argument with more
// than a description.
func constrained(e Entry) bool {
	for _, raw := range e.Args {
		var kw map[string]json.RawMessage
		if json.Unmarshal(raw, &kw) != nil {
			return true // not an object: compileScope refuses it anyway
		}
		for k := range kw {
			if k != "description" {
				return true
			}
		}
	}
	return false
}
