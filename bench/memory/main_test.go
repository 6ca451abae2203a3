package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/warden-run/warden/internal/mcptest"
)

// TestMain lets the test binary stand in for the benchmark as the Warden
// child it re-executes.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-serve-warden" {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole benchmark small: every target (the npm server
// when installed) and the verification of a small store.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	targets := "server-memory,warden,warden-sync"
	if _, err := mcptest.Find(t.Context(), "."); errors.Is(err, mcptest.ErrNotInstalled) {
		t.Logf("server-memory not measured: %v", err)
		targets = "warden,warden-sync"
	}
	var out strings.Builder
	err := run(t.Context(), []string{"-calls", "6", "-warmup", "2", "-rounds", "2", "-entities", "50",
		"-targets", targets, "-verify-entries", "300", "-verify-namespaces", "3"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"warden (audit async) p50", "warden (audit sync) p50", "search_nodes", "read_graph", "create_entities",
		"add_observations", "a search matches 1 entities", "Store.Verify, cold", "entries/s", "verification of 300 entries in 3 namespaces"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(targets, "server-memory") && !strings.Contains(got, "added") {
		t.Errorf("no added latency over server-memory:\n%s", got)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.calls != 500 || o.entities != 300 || o.verifyEntries != 100000 || len(o.targets) != 3 {
		t.Errorf("defaults %+v", o)
	}
	for _, bad := range [][]string{
		{"-calls", "0"},
		{"-rounds", "9", "-calls", "3"},
		{"-entities", "10"},
		{"-targets", "nope"},
		{"-targets", "", "-verify-entries", "0"},
		{"-verify-entries", "10", "-verify-namespaces", "11"},
		{"-serve-warden", "/tmp/x", "-audit-mode", "maybe"},
		{"extra"},
	} {
		if _, err := parseOptions(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
