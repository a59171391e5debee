package dashboards_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-ml/drover/shared/testenv"
)

// withClickHouse runs the tests with the package's ClickHouse engine, for
// goleak.VerifyTestMain (the panel test runs the OTLP receivers, the
// writer and fleet control).
type withClickHouse struct{ m *testing.M }

func (w withClickHouse) Run() int { return testenv.RunWithClickHouse(w.m) }

func TestMain(m *testing.M) { goleak.VerifyTestMain(withClickHouse{m}) }
