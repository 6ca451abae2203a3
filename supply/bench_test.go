package supply

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkScanTool scans one tool with a realistic description (~600
// bytes) and a three-parameter schema.
func BenchmarkScanTool(b *testing.B) {
	s, _ := NewScanner(ScannerOptions{})
	t := &mcp.Tool{Name: "read_text_file", Description: strings.Repeat("Read the complete contents of a file from the file system as text. ", 9),
		InputSchema: obj(map[string]string{"path": "the file", "head": "first N lines", "tail": "last N lines"})}
	b.SetBytes(int64(len(t.Description)))
	for b.Loop() {
		s.ScanTool("fs", t, nil)
	}
}

// BenchmarkRevet is the cost of Vet on an unchanged listing of 4,096
// tools (what every catalog sync pays per upstream).
func BenchmarkRevet(b *testing.B) {
	store := NewStore(filepath.Join(b.TempDir(), "warden.lock"))
	var tools []*mcp.Tool
	for i := range 4096 {
		tools = append(tools, &mcp.Tool{Name: fmt.Sprintf("tool_%04d", i), Description: "Does a thing.", InputSchema: obj(map[string]string{"a": "x"})})
	}
	if _, err := Approve(store, "big", "", tools, stdioID()); err != nil {
		b.Fatal(err)
	}
	sc, _ := NewScanner(ScannerOptions{})
	v, _ := NewVetter(VetterOptions{Store: store, Sink: &memSink{}, Scanner: sc})
	v.Vet(b.Context(), "big", tools)
	for b.Loop() {
		v.Vet(b.Context(), "big", tools)
	}
}

// BenchmarkPinEverything hashes server-everything's installed tree with its
// dependencies (what every launch verifies).
func BenchmarkPinEverything(b *testing.B) {
	u := realServersB(b)[0]
	for b.Loop() {
		if _, err := IdentityOf(u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotEverything copies server-everything's verified tree
// into a fresh snapshot (the first launch of an identity).
func BenchmarkSnapshotEverything(b *testing.B) {
	id, err := IdentityOf(realServersB(b)[0])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s := &snapshots{} // the default base: /dev/shm here
		if _, err := s.get(id); err != nil {
			b.Fatal(err)
		}
		s.close()
	}
}
