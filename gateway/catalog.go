package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/policy"
)

// Tool is one upstream tool as the gateway serves it.
type Tool struct {
	ID       string    // server.tool
	Server   string    // the upstream's name
	Name     string    // the tool's own name upstream
	Labels   []string  // risk labels: the operator's, plus what annotations add
	Upstream *mcp.Tool // as the upstream lists it
	// Quarantine, when set, says why the tool is held back (it differs from
	// what was pinned, it is new, its description is poisoned): it is not
	// listed, and calls to it are refused with this reason.
	Quarantine string
}

// Policy returns the tool as policy sees it.
func (t *Tool) Policy() policy.Tool {
	return policy.Tool{Server: t.Server, Name: t.Name, Labels: t.Labels}
}

// HasLabel reports whether the tool carries label.
func (t *Tool) HasLabel(label string) bool { return slices.Contains(t.Labels, label) }

// labelsFor computes a tool's risk labels: the operator's from warden.yaml,
// or all five when the operator set none; then whatever the server's own
// annotations add. Annotations never remove a label: the server may be the
// attacker.
func labelsFor(u config.Upstream, t *mcp.Tool) []string {
	labels, ok := u.Labels(t.Name)
	if !ok {
		labels = policy.AllLabels()
	}
	out := slices.Clone(labels)
	add := func(l string) {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	if a := t.Annotations; a != nil {
		if a.DestructiveHint != nil && *a.DestructiveHint {
			add(policy.LabelDestructive)
			add(policy.LabelWrites)
		}
		if a.OpenWorldHint != nil && *a.OpenWorldHint {
			add(policy.LabelEgress)
		}
	}
	sort.Strings(out)
	return out
}

// checkUpstreamTool refuses a tool an upstream lists that the gateway cannot
// serve safely: a name that cannot be part of a tool id, or an input schema
// that is not a JSON object schema.
func checkUpstreamTool(t *mcp.Tool) error {
	if t == nil || t.Name == "" || len(t.Name) > 128 {
		return fmt.Errorf("tool name must be 1 to 128 characters")
	}
	for _, r := range t.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("tool name %q: only letters, digits, '_', '-' and '.'", t.Name)
		}
	}
	if t.InputSchema == nil {
		return fmt.Errorf("tool %q has no input schema", t.Name)
	}
	b, err := json.Marshal(t.InputSchema)
	if err != nil {
		return fmt.Errorf("tool %q: input schema: %w", t.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["type"] != "object" {
		return fmt.Errorf("tool %q: input schema must be a JSON object schema", t.Name)
	}
	return nil
}

// toolID returns server.tool.
func toolID(server, name string) string { return server + "." + name }

// splitToolID splits server.tool at the first dot.
func splitToolID(id string) (string, string, bool) {
	s, n, ok := strings.Cut(id, ".")
	return s, n, ok && s != "" && n != ""
}
