package demo

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine of the workload outlives its Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
