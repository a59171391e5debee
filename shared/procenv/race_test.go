//go:build race

package procenv

// raceEnabled: the race detector runs a thread of its own.
const raceEnabled = true
