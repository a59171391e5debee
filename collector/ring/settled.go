package ring

import (
	"sync/atomic"
	"time"
)

// SettledOwns returns the ring's Owns for a node that may be joining a
// running cluster. A node configured to join peers (joining) owns nothing
// until it has seen another alive member, or until grace has passed since
// SettledOwns was called: a ring that holds only itself owns every model,
// and a node restarting into a running cluster must not run drift checks
// or resume jobs for all of them before it has joined. Once settled it is
// Owns. A node that joins nobody is settled from the start. The returned
// function is safe for concurrent use.
func (r *Ring) SettledOwns(joining bool, grace time.Duration) func(model string) bool {
	return settledOwns(r.Members, r.Owns, joining, time.Now, grace)
}

func settledOwns(members func() []Member, owns func(string) bool, joining bool, now func() time.Time, grace time.Duration) func(string) bool {
	start := now()
	var settled atomic.Bool
	settled.Store(!joining)
	return func(model string) bool {
		if !settled.Load() {
			alive := 0
			for _, m := range members() {
				if m.State == StateAlive {
					alive++
				}
			}
			if alive < 2 && now().Sub(start) < grace {
				return false
			}
			settled.Store(true)
		}
		return owns(model)
	}
}
