package corpus

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := DataDir(".")
	if errors.Is(err, ErrNoData) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// No text of dev_test.jsonl may appear in anything the detector is trained
// or tuned on: train.jsonl, dev_tune.jsonl and the hard negatives.
func TestDevTestNeverTrainedOn(t *testing.T) {
	dir := dataDir(t)
	test, err := ReadJSONL(filepath.Join(dir, "dev_test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, r := range test {
		seen[strings.TrimSpace(r.Text)] = r.ID
	}
	check := func(name string, rows []Row) {
		for _, r := range rows {
			if id, ok := seen[strings.TrimSpace(r.Text)]; ok {
				t.Errorf("%s row %s is dev_test row %s", name, r.ID, id)
			}
		}
	}
	for _, f := range []string{"train.jsonl", "dev_tune.jsonl"} {
		rows, err := ReadJSONL(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		check(f, rows)
	}
	hard, err := HardNegatives(context.Background(), Options{})
	if err != nil {
		t.Skipf("hard negatives unavailable here: %v", err)
	}
	check("hard negatives", hard)
	held, err := HeldOutBenign(context.Background(), Options{})
	if err != nil {
		t.Skipf("held-out text unavailable here: %v", err)
	}
	// The held-out benign text must be disjoint from the hard negatives.
	train := map[string]bool{}
	for _, r := range hard {
		train[r.Text] = true
	}
	for _, r := range held {
		if train[r.Text] {
			t.Errorf("held-out row %s is also a training hard negative", r.ID)
		}
	}
}

func TestReadMO(t *testing.T) {
	// A minimal little-endian catalog with one message.
	orig, trans := "Hello", "Bonjour"
	b := make([]byte, 28+16)
	put := func(off int, v uint32) {
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	put(0, 0x950412de)
	put(8, 1)
	put(12, 28)
	put(16, 36)
	b = append(b, orig...)
	b = append(b, trans...)
	put(28, uint32(len(orig)))
	put(32, 44)
	put(36, uint32(len(trans)))
	put(40, 44+uint32(len(orig)))
	o, tr, err := readMO(b)
	if err != nil || len(o) != 1 || o[0] != orig || tr[0] != trans {
		t.Fatalf("readMO = %v %v %v", o, tr, err)
	}
	if _, _, err := readMO([]byte("not a catalog at all, really")); err == nil {
		t.Error("garbage accepted")
	}
}
