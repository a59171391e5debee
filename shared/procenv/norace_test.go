//go:build !race

package procenv

const raceEnabled = false
