package redteam

import (
	"strings"
	"testing"
)

func TestBuiltinPacksParse(t *testing.T) {
	packs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	tasks := 0
	for _, p := range packs {
		tasks += len(p.Tasks)
	}
	t.Logf("%d packs, %d tasks", len(packs), tasks)
}

func TestBuiltinPacksCheck(t *testing.T) {
	packs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		if err := Check(p); err != nil {
			t.Errorf("pack %s:\n%v", p.Name, err)
		}
	}
}

func FuzzParseFiles(f *testing.F) {
	packs, err := LoadFS(builtin, "packs")
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range packs {
		f.Add(b)
	}
	f.Add([]byte("pack: x\nservers: [{name: s, tools: [{name: t, description: d, op: list, collection: c}]}]\n"))
	f.Add([]byte("pack: x\n---\npack: y\ngoals: [{id: g}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseFiles(map[string][]byte{"f.yaml": b})
		if err != nil {
			return
		}
		// a pack that parses and validates can be checked without panicking
		for _, p := range ps {
			_ = Check(p)
		}
	})
}

func TestParseErrors(t *testing.T) {
	base := "pack: x\nservers: [{name: s, tools: [{name: t, description: d, op: list, collection: c}]}]\nstate: {c: [{id: a, v: \"{{point:p}}\"}]}\npoints: {p: {}}\n"
	for _, c := range []struct{ name, doc, want string }{
		{"no pack", "servers: []\n", "pack: is required"},
		{"bad pack name", "pack: X Y\n", "lowercase"},
		{"unknown field", "pack: x\nserverz: []\n", "serverz"},
		{"no servers", "pack: x\n", "no servers"},
		{"unknown op", "pack: x\nservers: [{name: s, tools: [{name: t, description: d, op: fly}]}]\n", "op \"fly\""},
		{"memory is warden's", "pack: x\nservers: [{name: memory, tools: [{name: t, description: d, op: list, collection: c}]}]\n", "memory"},
		{"undefined point", "pack: x\nservers: [{name: s, tools: [{name: t, description: d, op: list, collection: c}]}]\nstate: {c: [{id: a, v: \"{{point:q}}\"}]}\n", "not defined"},
		{"unused point", strings.Replace(base, "points: {p: {}}", "points: {p: {}, r: {}}", 1), "appears nowhere"},
		{"call to unknown tool", base + "tasks: [{id: t1, prompt: p, calls: [{tool: s.nope}], check: [{received: [x]}], grant: {scope: [{tool: s.t}]}}]\n", "no tool s.nope"},
		{"task without check", base + "tasks: [{id: t1, prompt: p, calls: [{tool: s.t}], grant: {scope: [{tool: s.t}]}}]\n", "check is required"},
		{"task without grant", base + "tasks: [{id: t1, prompt: p, calls: [{tool: s.t}], check: [{received: [x]}]}]\n", "grant.scope is required"},
		{"bad constraint", base + "tasks: [{id: t1, prompt: p, calls: [{tool: s.t}], check: [{received: [x]}], grant: {scope: [{tool: s.t, args: {a: 3}}]}}]\n", "JSON Schema object"},
		{"leak in a task", base + "tasks: [{id: t1, prompt: p, calls: [{tool: s.t}], check: [{leaked: secret-value}], grant: {scope: [{tool: s.t}]}}]\n", "attacker goal's condition"},
		{"goal kind", base + "goals: [{id: g, kind: fun, instruction: i, plan: [{tool: s.t}], success: [{received: [x]}]}]\n", "kind \"fun\""},
		{"bad matcher", base + "goals: [{id: g, kind: money, instruction: i, plan: [{tool: s.t}], success: [{exists: {collection: c, where: {v: {near: 1}}}}]}]\n", "matcher \"near\""},
		{"short leak", base + "goals: [{id: g, kind: money, instruction: i, plan: [{tool: s.t}], leak: ab, success: [{received: [x]}]}]\n", "too short"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFiles(map[string][]byte{"f.yaml": []byte(c.doc)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
	if _, err := ParseFiles(map[string][]byte{"f.yaml": []byte(base)}); err != nil {
		t.Fatalf("the base document should parse: %v", err)
	}
}
