package policy

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func compileProblems(t *testing.T, src string) []Problem {
	t.Helper()
	_, err := Compile("bad.cedar", []byte(src))
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CompileError, got %v", err)
	}
	if len(ce.Problems) == 0 {
		t.Fatal("no problems listed")
	}
	return ce.Problems
}

func TestCompileReportsProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		want string
	}{
		{"syntax error with its line", "permit(principal, action, resource);\n\nforbid(principal action, resource);\n", 3, "syntax error"},
		{"unterminated", "permit(principal, action, resource)\n", 0, "syntax error"},
		{"unknown entity type in scope", "\npermit(principal == User::\"alice\", action == Action::\"call\", resource);", 2, "unrecognized entity type `User`"},
		{"unknown action", "permit(principal, action == Action::\"execute\", resource);", 1, "unrecognized action"},
		{"action not applicable to resource type", "permit(principal, action == Action::\"call\", resource is Memory);", 1, "unable to find an applicable action"},
		{"unknown attribute", "permit(principal, action, resource is Tool) when { resource.risk == 1 };", 1, "attribute `risk`"},
		{"type error", "permit(principal, action, resource) when { context.session.tainted == 1 };", 1, ""},
		{"unknown entity type next to arguments", "permit(principal, action, resource) when { context.args.owner == User::\"bob\" };", 1, "unrecognized entity type `User`"},
		{"unknown action next to arguments", "permit(principal, action, resource) when { context.args has x && action == Action::\"frob\" };", 1, "unrecognized action"},
		{"duplicate id", "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);", 2, "already used"},
		{"empty id", "@id(\"\") permit(principal, action, resource);", 1, "@id: empty"},
		{"control character in id", "@id(\"a\\nb\") permit(principal, action, resource);", 1, "unprintable"},
		{"invalid UTF-8", "// ok\npermit(principal, action, resource) when { \"\xff\" == \"\" };", 2, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := compileProblems(t, tt.src)
			p := ps[0]
			if p.File != "bad.cedar" || !strings.Contains(p.String(), tt.want) {
				t.Fatalf("problem %q; want it to mention %q", p.String(), tt.want)
			}
			if tt.line > 0 && p.Line != tt.line {
				t.Errorf("problem %q at line %d, want %d", p.String(), p.Line, tt.line)
			}
			if !strings.HasPrefix(p.String(), "bad.cedar:") {
				t.Errorf("problem %q does not start with the file name", p)
			}
		})
	}
}

func TestCompileListsEveryProblem(t *testing.T) {
	ps := compileProblems(t, `
permit(principal == User::"a", action, resource);
permit(principal, action == Action::"nope", resource);
permit(principal, action, resource);`)
	if len(ps) < 2 || ps[0].Line != 2 || ps[len(ps)-1].Line != 3 {
		t.Fatalf("problems %v", ps)
	}
}

func TestCompileRefusesHugeFiles(t *testing.T) {
	src := bytes.Repeat([]byte("permit(principal, action, resource);\n"), MaxSourceBytes/37+1)
	ps := compileProblems(t, string(src))
	if !strings.Contains(ps[0].Msg, "at most") {
		t.Fatalf("%v", ps)
	}
}

func TestCompileIDs(t *testing.T) {
	set := mustCompile(t, `@id("named") permit(principal, action, resource);
permit(principal, action == Action::"call", resource); permit(principal, action == Action::"read", resource);`)
	var ids []string
	for _, p := range set.Policies() {
		ids = append(ids, p.ID)
	}
	want := []string{"named", "test.cedar:2", "test.cedar:2:56"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("ids %q, want %q", ids, want)
	}
	if set.Len() != 3 || set.Name() != "test.cedar" || len(set.Digest()) != 64 {
		t.Fatalf("set %d %q %q", set.Len(), set.Name(), set.Digest())
	}
}

func TestCompileAcceptsArgumentConditions(t *testing.T) {
	mustCompile(t, `
permit(principal, action == Action::"call", resource is Tool)
when {
  principal.tier == "advanced" &&
  context.args has path && context.args.path like "/data/*" &&
  context.args["max results"] < 10 &&
  context.args.filter.owner == "me" &&
  resource in Server::"files"
}
unless { context.session.tainted && context.args.public };`)
}

func TestSchemaIsValid(t *testing.T) {
	if _, err := resolveSchema(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(Schema(), []byte("entity Agent")) {
		t.Fatal("Schema() does not return the schema")
	}
}

func FuzzCompile(f *testing.F) {
	f.Add([]byte(`permit(principal, action, resource);`))
	f.Add([]byte(`@id("x") forbid(principal in Group::"g", action in [Action::"read", Action::"write"], resource is Memory in Memory::"a") when { context.args.x like "*" } unless { context.session.tainted };`))
	f.Add([]byte("permit(principal, action, resource) when { context.args.a.b.c > 1 && principal.getTag(\"x\") == \"y\" };"))
	f.Add([]byte("forbid(principal is Agent, action, resource == Tool::\"a.b\") when { if context.args has a then context.args.a else false };"))
	f.Add([]byte("permit(principal, action, resource) when { ip(\"1.2.3.4\").isLoopback() && decimal(\"1.5\").lessThan(context.args.n) };"))
	f.Fuzz(func(t *testing.T, src []byte) {
		set, err := Compile("fuzz.cedar", src)
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error is not a *CompileError with problems: %v", err)
			}
			return
		}
		e := NewEngine(set)
		req := call(financeAgent(), searchTool, `{"a": {"b": 1}, "x": "y", "n": 2}`)
		e.Decide(t.Context(), req)
		e.Precheck(t.Context(), req)
	})
}
