//go:build race

package respond

// raceEnabled: the race detector slows everything several times; timing
// assertions are loosened under it.
const raceEnabled = true
