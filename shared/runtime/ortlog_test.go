package runtime

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/testenv"
)

// TestORTLogReachesSlog: with a debug logger, the lines ONNX Runtime logs
// while it creates a session arrive as slog records with its category, the
// code location and the model's path; with a warn logger, its info lines
// are not even produced.
func TestORTLogReachesSlog(t *testing.T) {
	if err := Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(testenv.ModuleDir(t, "github.com/yalue/onnxruntime_go"), "test_data", "sklearn_randomforest.onnx")

	var debug testenv.Buffer
	b := &ONNX{Log: slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	m, err := b.Load(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	out := debug.String()
	if !strings.Contains(out, "category=") || !strings.Contains(out, "code_location=") || !strings.Contains(out, "model_path="+model) {
		t.Fatalf("no ONNX Runtime line reached the logger:\n%s", out)
	}
	t.Logf("first ORT line: %s", strings.SplitN(out, "\n", 2)[0])

	var warn testenv.Buffer
	b = &ONNX{Log: slog.New(slog.NewTextHandler(&warn, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	m, err = b.Load(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(warn.String(), "level=DEBUG") || strings.Contains(warn.String(), "cannot be routed") {
		t.Fatalf("warn logger got:\n%s", warn.String())
	}
}
