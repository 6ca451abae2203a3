package acindex

import (
	"slices"
	"testing"
)

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

// Stepper.Next and AppendEnds find what Scan finds.
func TestNext(t *testing.T) {
	k := New([][]string{{"he", "she"}, {"hers"}, {"无视"}})
	text := "uSHErs 请无视 ushers"
	var want []Hit
	k.ScanN(text, func(tag, start, n int) bool {
		want = append(want, Hit{tag, start, n})
		return true
	})
	var got []Hit
	var st int32
	step := k.Stepper()
	for i := 0; i < len(text); i++ {
		var ends bool
		if st, ends = step.Next(st, text[i]); ends {
			got = k.AppendEnds(got, st, i)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Stepper.Next found %v, Scan %v", got, want)
	}
}
