package injection

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/warden-run/warden/inspect/internal/corpus"
	"github.com/warden-run/warden/inspect/internal/textnorm"
)

// A Strong rule flags text on its own, so it must (almost) never fire on the
// benign rows the detector learns from: train.jsonl, dev_tune.jsonl and the
// hard negatives. dev_test is not looked at.
func TestRuleBenignHits(t *testing.T) {
	dir, err := corpus.DataDir(".")
	if errors.Is(err, corpus.ErrNoData) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	rs, err := CompileRules(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	n := textnorm.New()
	var benign []corpus.Row
	for _, f := range []string{"train.jsonl", "dev_tune.jsonl"} {
		rows, err := corpus.ReadJSONL(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Label == 0 {
				benign = append(benign, r)
			}
		}
	}
	if hard, err := corpus.HardNegatives(context.Background(), corpus.Options{}); err == nil {
		benign = append(benign, hard...)
	}
	hits := map[string]int{}
	for _, r := range benign {
		seen := map[string]bool{}
		for _, h := range rs.Match(n.Normalize(r.Text).S, nil, 32) {
			id := rs.Rules()[h.Rule].ID
			if !seen[id] {
				seen[id] = true
				hits[id]++
			}
		}
	}
	for _, r := range rs.Rules() {
		t.Logf("%-24s fires on %4d of %d benign rows (strong: %v)", r.ID, hits[r.ID], len(benign), r.Strong)
		if r.Strong && hits[r.ID]*1000 > len(benign) {
			t.Errorf("strong rule %s fires on %d benign rows (more than 0.1%%)", r.ID, hits[r.ID])
		}
	}
}
