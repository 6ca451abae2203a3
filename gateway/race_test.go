//go:build race

package gateway_test

// The race detector multiplies memory use several times: resident-set
// limits are checked only in builds without it.
const raceEnabled = true
