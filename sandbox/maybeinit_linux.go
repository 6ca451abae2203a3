package sandbox

import "github.com/warden-run/warden/sandbox/internal/initproc"

// MaybeInit turns this process into a sandbox's init if the host started it
// as one, and never returns in that case; otherwise it returns at once.
// Call it first thing in main (the warden binary does) and in TestMain of
// any test binary that launches sandboxes: a launch re-executes the running
// binary (/proc/self/exe) as the init, so the init code is whatever binary
// the launcher runs in. (Linking this package already runs the same check
// from a package initialiser, as early as Go allows; MaybeInit makes the
// entry point explicit and covers any binary where that runs late.)
func MaybeInit() { initproc.Maybe() }
