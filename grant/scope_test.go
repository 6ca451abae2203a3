package grant

import (
	"encoding/json"
	"strings"
	"testing"
)

func mustScope(t testing.TB, js string) *compiledScope {
	t.Helper()
	var s Scope
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	cs, err := compileScope(s)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestScopeChecksCalls(t *testing.T) {
	cs := mustScope(t, `[
		{"tool": "files.read_file", "args": {"path": {"path_within": ["/data", "/srv/shared"]}}},
		{"tool": "http.fetch", "args": {"url": {"url_host_in": ["api.example.com", "*.docs.example.org"]}}},
		{"tool": "payments.send", "args": {
			"currency": {"enum": ["EUR", "USD"]},
			"amount": {"type": "number", "minimum": 0, "maximum": 100},
			"memo": {"type": "string", "maxLength": 20, "pattern": "^[A-Za-z0-9 ]*$"},
			"to": {"const": "acct-42"}}},
		{"tool": "search.*"}
	]`)
	cases := []struct {
		name, tool, args string
		code             Code
		want             string
	}{
		{"path inside", "files.read_file", `{"path": "/data/report.csv"}`, CodeOK, ""},
		{"path is a root", "files.read_file", `{"path": "/srv/shared"}`, CodeOK, ""},
		{"dot-dot escape", "files.read_file", `{"path": "/data/../etc/passwd"}`, CodeConstraint, "resolves to /etc/passwd"},
		{"prefix is not containment", "files.read_file", `{"path": "/database/x"}`, CodeConstraint, "outside"},
		{"relative path", "files.read_file", `{"path": "data/x"}`, CodeConstraint, "not absolute"},
		{"path of the wrong type", "files.read_file", `{"path": ["/data/x"]}`, CodeConstraint, "must be a path string"},
		{"constrained argument missing", "files.read_file", `{}`, CodeConstraint, "must be given"},
		{"unconstrained extra argument", "files.read_file", `{"path": "/data/a", "encoding": "utf-8"}`, CodeOK, ""},
		{"url on the list", "http.fetch", `{"url": "https://api.example.com/v1?q=1"}`, CodeOK, ""},
		{"wildcard subdomain", "http.fetch", `{"url": "https://a.docs.example.org/x"}`, CodeOK, ""},
		{"wildcard is not the apex", "http.fetch", `{"url": "https://docs.example.org/x"}`, CodeConstraint, "not one of"},
		{"userinfo trick", "http.fetch", `{"url": "https://api.example.com@evil.example/x"}`, CodeConstraint, "evil.example"},
		{"suffix trick", "http.fetch", `{"url": "https://api.example.com.evil.example/"}`, CodeConstraint, "not one of"},
		{"backslash trick", "http.fetch", `{"url": "https://evil.example\\@api.example.com/"}`, CodeConstraint, "backslash"},
		{"other scheme", "http.fetch", `{"url": "file:///etc/passwd"}`, CodeConstraint, "scheme"},
		{"upper-case host", "http.fetch", `{"url": "HTTPS://API.EXAMPLE.COM/"}`, CodeOK, ""},
		{"payment in range", "payments.send", `{"currency": "EUR", "amount": 99.5, "memo": "rent", "to": "acct-42"}`, CodeOK, ""},
		{"amount over maximum", "payments.send", `{"currency": "EUR", "amount": 1000, "memo": "rent", "to": "acct-42"}`, CodeConstraint, "amount"},
		{"amount as a string", "payments.send", `{"currency": "EUR", "amount": "5", "memo": "x", "to": "acct-42"}`, CodeConstraint, "amount"},
		{"currency not in enum", "payments.send", `{"currency": "BTC", "amount": 1, "memo": "x", "to": "acct-42"}`, CodeConstraint, "currency"},
		{"other recipient", "payments.send", `{"currency": "EUR", "amount": 1, "memo": "x", "to": "attacker"}`, CodeConstraint, "to"},
		{"memo too long", "payments.send", `{"currency": "EUR", "amount": 1, "memo": "aaaaaaaaaaaaaaaaaaaaaaaaa", "to": "acct-42"}`, CodeConstraint, "memo"},
		{"memo pattern", "payments.send", `{"currency": "EUR", "amount": 1, "memo": "<img src=x>", "to": "acct-42"}`, CodeConstraint, "memo"},
		{"glob entry", "search.query", `{"q": "anything"}`, CodeOK, ""},
		{"tool not granted", "files.write_file", `{"path": "/data/a"}`, CodeToolNotGranted, "not in this task's grant"},
		{"glob does not cross servers", "searchx.query", `{}`, CodeToolNotGranted, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args, derr := decodeArgs([]byte(c.args))
			if derr != nil {
				t.Fatal(derr)
			}
			_, err := cs.check(c.tool, args)
			if c.code == CodeOK {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Code != c.code || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %s mentioning %q", err, c.code, c.want)
			}
		})
	}
}

func TestArgumentsMustBeAnObject(t *testing.T) {
	for _, raw := range []string{`[1]`, `"x"`, `{`, `{"a":1}{"b":2}`} {
		if _, err := decodeArgs([]byte(raw)); err == nil || err.Code != CodeArgsInvalid {
			t.Errorf("%s: err = %v", raw, err)
		}
	}
	if m, err := decodeArgs(nil); err != nil || len(m) != 0 {
		t.Errorf("empty arguments: %v %v", m, err)
	}
}

// argsCases are arguments an agent could send, objects and not.
var argsCases = []string{
	``, ` `, `null`, ` null `, `{}`, ` {"a": 1} `, `{"a": {"b": [1, "x", null, true]}}`, `{"a": 1e999}`, `{"a": 1, "a": 2}`,
	"{\"a\": \"\xff\"}", `[1]`, `"x"`, `1`, `true`, `{`, `}`, `{"a":1}{"b":2}`, `{"a":1} x`, `{"a":1},`, `{} null`,
	`{"a": 01}`, `{'a': 1}`, "\xef\xbb\xbf{}", `nul`, `{"a": [` + strings.Repeat("[", 10001) + `]}`,
}

// TestCheckArgsObjectMatchesDecodeArgs: checking the arguments without
// decoding them refuses exactly what decoding refuses, with its error.
func TestCheckArgsObjectMatchesDecodeArgs(t *testing.T) {
	for _, raw := range argsCases {
		checkArgsObjectAgrees(t, []byte(raw))
	}
}

// FuzzCheckArgsObject: go test -run '^$' -fuzz FuzzCheckArgsObject ./grant
func FuzzCheckArgsObject(f *testing.F) {
	for _, raw := range argsCases {
		f.Add([]byte(raw))
	}
	f.Fuzz(checkArgsObjectAgrees)
}

func checkArgsObjectAgrees(t *testing.T, raw []byte) {
	_, want := decodeArgs(raw)
	got := checkArgsObject(raw)
	if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
		t.Fatalf("%.100q: checkArgsObject = %v, decodeArgs = %v", raw, got, want)
	}
}

func TestScopesAreValidatedAtMint(t *testing.T) {
	cases := []struct{ scope, want string }{
		{`[]`, "scope is empty"},
		{`[{"tool": ""}]`, "empty"},
		{`[{"tool": "files.[a"}]`, "not a valid glob"},
		{`[{"tool": "read_file"}]`, "server.tool"},
		{`[{"tool": "a/b.c"}]`, "without '/'"},
		{`[{"tool": "f.r", "budget": -1}]`, "negative"},
		{`[{"tool": "f.r", "args": {"p": {"$ref": "http://evil.example/schema"}}}]`, "not allowed"},
		{`[{"tool": "f.r", "args": {"p": {"oneOf": []}}}]`, "not allowed"},
		{`[{"tool": "f.r", "args": {"p": "string"}}]`, "must be a JSON object"},
		{`[{"tool": "f.r", "args": {"p": {}}}]`, "empty"},
		{`[{"tool": "f.r", "args": {"p": {"path_within": ["relative"]}}}]`, "not a valid schema"},
		{`[{"tool": "f.r", "args": {"p": {"path_within": []}}}]`, "not a valid schema"},
		{`[{"tool": "f.r", "args": {"p": {"url_host_in": ["evil.example/path"]}}}]`, "not a host name"},
		{`[{"tool": "f.r", "args": {"p": {"pattern": "("}}}]`, "not a valid schema"},
		{`[{"tool": "f.r", "args": {"p": {"minimum": "zero"}}}]`, "not a valid schema"},
		{`[{"tool": "f.r", "args": {"p": {"items": {"items": {"items": {"items": {"items": {"type": "string"}}}}}}}}]`, "nests"},
	}
	for _, c := range cases {
		t.Run(c.scope, func(t *testing.T) {
			var s Scope
			if err := json.Unmarshal([]byte(c.scope), &s); err != nil {
				t.Fatal(err)
			}
			_, err := compileScope(s)
			if err == nil || CodeOf(err) != CodeInvalidInput || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want invalid_input mentioning %q", err, c.want)
			}
		})
	}
}

func TestCoversIsSound(t *testing.T) {
	cases := []struct {
		parent, child string
		want          bool
	}{
		{"files.*", "files.read_file", true},
		{"files.*", "files.read_*", true},
		{"files.*", "files.*", true},
		{"*", "files.read_file", true},
		{"*.read_*", "files.read_file", true},
		{"*.read_*", "*.read_file", true},
		{"files.read_file", "files.*", false},
		{"files.read_*", "files.*", false},
		{"files.read_file", "files.read_file", true},
		{"files.read_file", "files.read_filex", false},
		{"files.read_?ile", "files.read_file", true},
		{"files.read_file", "files.read_?ile", false},
		{"files.read_[fg]ile", "files.read_file", true},
		{"files.read_[fg]ile", "files.read_[fg]ile", true},
		{"files.read_file", "files.read_[fg]ile", false},
		{"files.*", "mail.*", false},
		{"files.*x", "files.*", false},
		{"a*b*c", "a*c", false},
		{"a*c", "a*b*c", true},
	}
	for _, c := range cases {
		if got := covers(c.parent, c.child); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.parent, c.child, got, c.want)
		}
	}
}

func TestFixedArguments(t *testing.T) {
	cs := mustScope(t, `[{"tool": "mail.send", "args": {
		"to": {"enum": ["a@example.org"]}, "subject": {"maxLength": 80}, "path": {"path_within": ["/out"]}}}]`)
	e := &cs.entries[0]
	if !e.Fixed("to") || !e.Fixed("path") || e.Fixed("subject") || e.Fixed("body") {
		t.Fatal("Fixed misclassified an argument")
	}
}
