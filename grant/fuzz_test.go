package grant

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/warden-run/warden/identity"
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

// FuzzDPoPVerify feeds arbitrary proofs to the DPoP verifier (they arrive in
// a request header, from anyone): no panic, every refusal has a specific
// code, and nothing verifies but a proof the agent's key signed for this
// request, grant and moment.
func FuzzDPoPVerify(f *testing.F) {
	// A fixed key: the fuzzing engine's workers run this function again, and
	// must all know the key that signed the seeds.
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	jkt, err := identity.Thumbprint(key.Public())
	if err != nil {
		f.Fatal(err)
	}
	const u, tok = "https://gw.example/mcp", "grant-token"
	now := time.Unix(1_800_000_000, 0)
	valid := dpop(f, key, "POST", u, tok, now, "j1")
	f.Add(valid)
	f.Add(dpop(f, key, "GET", u, tok, now, "j2"))
	f.Add(dpop(f, key, "POST", "https://GW.example:443/mcp?q=1", tok, now, "j3"))
	f.Add(strings.Replace(valid, ".", "x.", 1))
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, proof string) {
		v := NewDPoPVerifier(time.Minute, func() time.Time { return now })
		got, err := v.Verify(proof, "POST", u, tok)
		if err != nil {
			if c := CodeOf(err); c != CodeDPoPInvalid && c != CodeBindingUnproven {
				t.Fatalf("refusal with code %q: %v", c, err)
			}
			return
		}
		if got != jkt {
			t.Fatalf("verified a proof signed by a key (%s) the agent does not hold: %q", got, proof)
		}
		if _, err := v.Verify(proof, "POST", u, tok); CodeOf(err) != CodeDPoPReplayed {
			t.Fatalf("replayed proof: %v", err)
		}
	})
}
