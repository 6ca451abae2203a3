package config

import "testing"

// The builtin memory server's tools keep their default labels in an
// Upstream built in code, not only in one loaded from warden.yaml.
func TestBuiltinMemoryLabelsWithoutLoad(t *testing.T) {
	u := Upstream{Name: "memory", Builtin: "memory"}
	if l, ok := u.Labels("read_graph"); !ok || len(l) != 1 || l[0] != "reads" {
		t.Fatalf("read_graph: %v %v", l, ok)
	}
	if l, ok := u.Labels("delete_entities"); !ok || len(l) != 2 {
		t.Fatalf("delete_entities: %v %v", l, ok)
	}
	if _, ok := u.Labels("unknown_tool"); ok {
		t.Fatal("an unknown tool has labels")
	}
}
