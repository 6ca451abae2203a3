package grant

import (
	"encoding/json"
	"path"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary tokens to the grant verifier: nothing but the
// real grant verifies, and every refusal has a specific code.
func FuzzVerify(f *testing.F) {
	e := newEnv(f)
	a := newAgent(f, "a")
	_, tok := e.grant(f, a, filesScope, 5, 0)
	f.Add(tok)
	f.Add(strings.Replace(tok, ".", ".x", 1))
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoid2FyZGVuLWdyYW50K2p3dCJ9.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := e.svc.Verifier().Verify(s)
		if err == nil {
			if s != tok || g.Subject != a.rec.ID.String() {
				t.Fatalf("verified a token Warden did not mint: %q", s)
			}
			return
		}
		if CodeOf(err) == CodeInternal {
			t.Fatalf("refusal without a specific code: %v", err)
		}
	})
}

// FuzzConstraint compiles arbitrary constraints and checks arbitrary
// arguments against them: no panic, and a typed constraint never lets
// through a value outside it.
func FuzzConstraint(f *testing.F) {
	f.Add(`{"path_within": ["/data"]}`, `{"p": "/data/../etc"}`)
	f.Add(`{"url_host_in": ["ok.example"]}`, `{"p": "https://ok.example@evil.example"}`)
	f.Add(`{"enum": ["a", 1, null]}`, `{"p": [1, {"x": 2}]}`)
	f.Add(`{"type": "number", "maximum": 1e308}`, `{"p": 1e400}`)
	f.Add(`{"pattern": "^a+$", "maxLength": 3}`, `{"p": "\xff\xfe"}`)
	f.Add(`{"items": {"path_within": ["/x"]}}`, `{"p": ["/x/a", "/y"]}`)
	f.Fuzz(func(t *testing.T, constraint, args string) {
		cs, err := compileScope(Scope{{Tool: "s.t", Args: map[string]json.RawMessage{"p": json.RawMessage(constraint)}}})
		if err != nil {
			if CodeOf(err) != CodeInvalidInput {
				t.Fatalf("compile error without invalid_input: %v", err)
			}
			return
		}
		m, derr := decodeArgs([]byte(args))
		if derr != nil {
			return
		}
		if _, err := cs.check("s.t", m); err != nil {
			return
		}
		// Allowed: a path_within or url_host_in at the top level must hold.
		var c map[string]any
		_ = json.Unmarshal([]byte(constraint), &c)
		if roots, ok := c["path_within"].([]any); ok {
			rs := make([]string, len(roots))
			for i, r := range roots {
				rs[i] = path.Clean(r.(string))
			}
			if msg := checkPathWithin(m["p"], rs); msg != "" {
				t.Fatalf("allowed %v outside %v: %s", m["p"], rs, msg)
			}
		}
	})
}
