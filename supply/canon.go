package supply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ToolHashes are the SHA-256 digests (hex) of each part of a tool's surface
// that a model reads or that changes what a call does.
type ToolHashes struct {
	Name         string `json:"name"`
	Title        string `json:"title"`
	Description  string `json:"description"`
	InputSchema  string `json:"input_schema"`
	OutputSchema string `json:"output_schema"`
	Annotations  string `json:"annotations"`
}

// Surface is one tool as the lock records it: hashes over canonical forms,
// and the canonical forms themselves (for review and diffs).
type Surface struct {
	Name         string
	Title        string
	Description  string
	InputSchema  jsontext.Value // canonical JSON (RFC 8785), "null" when absent
	OutputSchema jsontext.Value
	Annotations  jsontext.Value
}

// canonical returns the RFC 8785 (JCS) form of v's JSON encoding.
func canonical(v any) (jsontext.Value, error) {
	if v == nil {
		return jsontext.Value("null"), nil
	}
	var b []byte
	switch x := v.(type) {
	case json.RawMessage:
		b = x
	case jsontext.Value:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	out := jsontext.Value(append([]byte(nil), b...))
	if err := out.Canonicalize(); err != nil {
		return nil, err
	}
	return out, nil
}

// SurfaceOf returns the canonical surface of a listed tool.
func SurfaceOf(t *mcp.Tool) (Surface, error) {
	s := Surface{Name: t.Name, Title: t.Title, Description: t.Description}
	var err error
	if s.InputSchema, err = canonical(t.InputSchema); err != nil {
		return s, fmt.Errorf("tool %q: input schema: %w", t.Name, err)
	}
	if s.OutputSchema, err = canonical(t.OutputSchema); err != nil {
		return s, fmt.Errorf("tool %q: output schema: %w", t.Name, err)
	}
	var ann any
	if t.Annotations != nil {
		ann = t.Annotations
	}
	if s.Annotations, err = canonical(ann); err != nil {
		return s, fmt.Errorf("tool %q: annotations: %w", t.Name, err)
	}
	return s, nil
}

// Hashes returns the digests of the surface.
func (s Surface) Hashes() ToolHashes {
	return ToolHashes{
		Name:         sum(s.Name),
		Title:        sum(s.Title),
		Description:  sum(s.Description),
		InputSchema:  sum(string(s.InputSchema)),
		OutputSchema: sum(string(s.OutputSchema)),
		Annotations:  sum(string(s.Annotations)),
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// changed lists the parts whose digests differ, in a fixed order.
func (h ToolHashes) changed(o ToolHashes) []string {
	var out []string
	for _, p := range []struct {
		name string
		a, b string
	}{
		{"name", h.Name, o.Name},
		{"title", h.Title, o.Title},
		{"description", h.Description, o.Description},
		{"input schema", h.InputSchema, o.InputSchema},
		{"output schema", h.OutputSchema, o.OutputSchema},
		{"annotations", h.Annotations, o.Annotations},
	} {
		if p.a != p.b {
			out = append(out, p.name)
		}
	}
	return out
}
