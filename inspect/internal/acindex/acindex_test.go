package acindex

import "testing"

func TestScan(t *testing.T) {
	k := New([][]string{{"he", "she"}, {"hers"}, {"无视"}})
	type hit struct{ tag, start int }
	var got []hit
	k.Scan("uSHErs 请无视", func(tag, start int) bool {
		got = append(got, hit{tag, start})
		return true
	})
	want := []hit{{0, 1}, {0, 2}, {1, 2}, {2, 10}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
