package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// serveGCPercent is the garbage collector's target for `warden serve`.
// Each MCP message the gateway decodes costs the SDK's JSON decoder a
// fresh 32 KiB buffer, so the gateway allocates far more than it keeps:
// with Go's default (100) a quarter of its CPU went to collection under
// load. Letting the heap grow to five times what is live (a few tens of
// megabytes for a gateway) cut the time per call by about a quarter
// (BenchmarkCall in gateway/bench_test.go, GOGC=100 against 400).
const serveGCPercent = 400

// tuneGC applies serveGCPercent unless GOGC is set, and a soft memory limit
// of memLimit bytes unless GOMEMLIMIT is set, so that the larger target
// gives way before the heap grows past it.
func tuneGC(log *slog.Logger, memLimit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && memLimit > 0 {
		debug.SetMemoryLimit(memLimit)
	}
	log.Debug("garbage collector", "gc_percent", serveGCPercent, "memory_limit", memLimit)
}
