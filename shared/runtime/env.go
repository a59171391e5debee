// Package runtime runs models. Today its one backend is ONNX Runtime through
// onnxruntime_go; the library is loaded once per process from the path that
// deps.ONNXRuntimeLibrary resolves (or the one given to Init). The agent
// serves with it; the collector's optimizer scores candidates and checks its
// exports with it (agent and collector may not import each other, so it lives
// in shared/).
package runtime

import (
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/shared/deps"
)

var (
	initOnce sync.Once
	initErr  error
	initLib  string
)

// Init loads the ONNX Runtime shared library and creates the process-wide
// environment. lib may be empty to use deps.ONNXRuntimeLibrary(). Only the
// first call loads; later calls return its result (and fail if they name a
// different library). Safe for concurrent use.
func Init(lib string) error {
	initOnce.Do(func() {
		if lib == "" {
			if lib, initErr = deps.ONNXRuntimeLibrary(); initErr != nil {
				return
			}
		}
		initLib = lib
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("initialize ONNX Runtime from %s: %w", lib, err)
		}
	})
	if initErr == nil && lib != "" && lib != initLib {
		return fmt.Errorf("ONNX Runtime already loaded from %s, cannot load %s too", initLib, lib)
	}
	return initErr
}

// Version returns the loaded ONNX Runtime's version string.
func Version() string { return ort.GetVersion() }
