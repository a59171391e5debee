package optimize

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
)

type withClickHouse struct{ m *testing.M }

func (w withClickHouse) Run() int { return testenv.RunWithClickHouse(w.m) }

// TestMain starts the ClickHouse engine once for the package's tests and
// checks that no goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(withClickHouse{m}) }
