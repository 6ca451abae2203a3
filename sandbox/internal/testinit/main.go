// Command testinit is the sandbox's init for the escape tests: the init code
// of package initproc and nothing else, built the way the warden binary is,
// without the race detector.
//
// The tests run with -race, and a race-built init cannot live under a small
// memory rlimit even for the moment it lowers its own limits to start the
// tool: the race runtime maps terabytes of shadow memory, which RLIMIT_DATA
// counts, so any mapping it makes in that moment fails and the init dies
// without reporting. The warden binary that users run as the init is never
// race-built, so this is the init the escape tests hold to account.
package main

import (
	"fmt"
	"os"

	"github.com/warden-run/warden/sandbox/internal/initproc"
)

func main() {
	initproc.Maybe()
	fmt.Fprintln(os.Stderr, "testinit: not started as a sandbox's init")
	os.Exit(2)
}
