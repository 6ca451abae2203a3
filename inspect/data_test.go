package inspect

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/warden-run/warden/inspect/internal/corpus"
)

// loadRows reads a data set from ../shared/data/injection (resolved from
// the module root), skipping the test when the shared data is absent.
func loadRows(tb testing.TB, name string) []corpus.Row {
	tb.Helper()
	dir, err := corpus.DataDir(".")
	if errors.Is(err, corpus.ErrNoData) {
		tb.Skipf("skipping: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	rows, err := corpus.ReadJSONL(filepath.Join(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}
