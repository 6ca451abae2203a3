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

// Next (the Index's and a Stepper's) and AppendEnds find what Scan finds.
func TestNext(t *testing.T) {
	k := New([][]string{{"he", "she"}, {"hers"}, {"无视"}})
	text := "uSHErs 请无视 ushers"
	var want []Hit
	k.ScanN(text, func(tag, start, n int) bool {
		want = append(want, Hit{tag, start, n})
		return true
	})
	var got, gotStep []Hit
	var st, sst int32
	step := k.Stepper()
	for i := 0; i < len(text); i++ {
		var ends bool
		if st, ends = k.Next(st, text[i]); ends {
			got = k.AppendEnds(got, st, i)
		}
		if sst, ends = step.Next(sst, text[i]); ends {
			gotStep = k.AppendEnds(gotStep, sst, i)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Next found %v, Scan %v", got, want)
	}
	if !slices.Equal(gotStep, want) {
		t.Fatalf("Stepper.Next found %v, Scan %v", gotStep, want)
	}
}
