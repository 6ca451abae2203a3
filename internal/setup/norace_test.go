//go:build !race

package setup

const raceEnabled = false
