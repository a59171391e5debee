package evaluate

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the binary if a goroutine outlives the tests (the
// ForwardQueue's Run).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
