package redteam

import "testing"

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
