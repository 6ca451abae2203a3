//go:build race

package setup

// raceEnabled: timing targets are checked only in builds without the race
// detector, which slows everything several times.
const raceEnabled = true
