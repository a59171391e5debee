package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
	ort "github.com/yalue/onnxruntime_go"
)

// ONNX Runtime's own log lines (graph optimisation warnings, model loading
// errors, ...) reach the process logger through the C API's per-session
// logging function (OrtApi::SetUserLoggingFunction, ORT >= 1.17): every
// session the backend creates gets a logging function that passes each line
// to the backend's slog logger, with ORT's severity mapped to a slog level
// and its category, code location and the model's path as attributes.
// onnxruntime_go does not expose that function, so it is called through the
// library's OrtApi table (purego), on the session options' C pointer.
//
// What stays outside: lines the process-wide environment logs before or
// outside any session (ORT's default logger, stderr, at the environment's
// severity: errors only, see Init), and anything ORT prints directly.

// ortAPIVersion is the OrtApi version onnxruntime_go asks for
// (ORT_API_VERSION in its onnxruntime_c_api.h).
const ortAPIVersion = 24

// Indexes of the OrtApi function table: entries in declaration order in the
// onnxruntime_c_api.h that onnxruntime_go ships (ORT_API_VERSION 24); the
// table only grows at its end, so they hold for every later library.
// TestORTLogReachesSlog fails if they point elsewhere.
const (
	apiGetErrorMessage        = 2
	apiReleaseStatus          = 93
	apiSetUserLoggingFunction = 266
)

// ORT's severities (OrtLoggingLevel).
const (
	ortVerbose = 0
	ortInfo    = 1
	ortWarning = 2
	ortError   = 3
	ortFatal   = 4
)

var ortLog struct {
	once     sync.Once
	err      error
	callback uintptr // the OrtLoggingFunction
	next     atomic.Uint64
	loggers  sync.Map // uint64 → *sessionLog

	setLoggingFunction func(opts unsafe.Pointer, fn, param uintptr) unsafe.Pointer
	errorMessage       func(status unsafe.Pointer) string
	releaseStatus      func(status unsafe.Pointer)
}

type sessionLog struct {
	log  *slog.Logger
	path string
}

// ortAPIBase is OrtApiBase.
type ortAPIBase struct {
	GetAPI, GetVersionString uintptr
}

// setupORTLog finds the OrtApi functions and makes the C callback, once.
func setupORTLog(lib string) error {
	ortLog.once.Do(func() {
		h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			ortLog.err = fmt.Errorf("dlopen %s: %w", lib, err)
			return
		}
		var getAPIBase func() *ortAPIBase
		purego.RegisterLibFunc(&getAPIBase, h, "OrtGetApiBase")
		base := getAPIBase()
		if base == nil {
			ortLog.err = errors.New("OrtGetApiBase returned nothing")
			return
		}
		var getAPI func(version uint32) unsafe.Pointer
		purego.RegisterFunc(&getAPI, base.GetAPI)
		p := getAPI(ortAPIVersion)
		if p == nil {
			ortLog.err = fmt.Errorf("the library does not offer OrtApi version %d", ortAPIVersion)
			return
		}
		api := (*[apiSetUserLoggingFunction + 1]uintptr)(p)
		purego.RegisterFunc(&ortLog.setLoggingFunction, api[apiSetUserLoggingFunction])
		purego.RegisterFunc(&ortLog.errorMessage, api[apiGetErrorMessage])
		purego.RegisterFunc(&ortLog.releaseStatus, api[apiReleaseStatus])
		ortLog.callback = purego.NewCallback(ortLogLine)
	})
	return ortLog.err
}

// ortLogLine is the OrtLoggingFunction: void(void* param, OrtLoggingLevel
// severity, const char* category, const char* logid, const char*
// code_location, const char* message). ORT may call it from any of its
// threads.
func ortLogLine(param uintptr, severity int32, category, logid, codeLocation, message *byte) {
	v, ok := ortLog.loggers.Load(uint64(param))
	if !ok {
		return
	}
	sl := v.(*sessionLog)
	level := ortLevel(severity)
	ctx := context.Background()
	if !sl.log.Enabled(ctx, level) {
		return
	}
	sl.log.Log(ctx, level, goString(message), "category", goString(category),
		"code_location", goString(codeLocation), "model_path", sl.path)
}

// ortLevel maps ORT's severity to slog's.
func ortLevel(severity int32) slog.Level {
	switch severity {
	case ortVerbose:
		return slog.LevelDebug - 4
	case ortInfo:
		return slog.LevelDebug
	case ortWarning:
		return slog.LevelWarn
	case ortError:
		return slog.LevelError
	default:
		return slog.LevelError + 4
	}
}

// ortSeverity is the least severe ORT level that log would print: info
// when it prints debug lines, warning otherwise (verbose lines are never
// asked for: ORT's verbose log is its developers' trace).
func ortSeverity(log *slog.Logger) ort.LoggingLevel {
	ctx := context.Background()
	switch {
	case log.Enabled(ctx, slog.LevelDebug):
		return ort.LoggingLevelInfo
	case log.Enabled(ctx, slog.LevelWarn):
		return ort.LoggingLevelWarning
	default:
		return ort.LoggingLevelError
	}
}

// routeSessionLog sets opts' severity from log's level and installs the
// logging function for sessions created with opts. It returns a function
// that stops the routing (call it once the session is destroyed).
func routeSessionLog(opts *ort.SessionOptions, log *slog.Logger, path string) (func(), error) {
	if err := opts.SetLogSeverityLevel(ortSeverity(log)); err != nil {
		return nil, fmt.Errorf("log severity: %w", err)
	}
	if err := setupORTLog(initLib); err != nil {
		return nil, err
	}
	cOpts, err := sessionOptionsPointer(opts)
	if err != nil {
		return nil, err
	}
	id := ortLog.next.Add(1)
	ortLog.loggers.Store(id, &sessionLog{log: log, path: path})
	if status := ortLog.setLoggingFunction(cOpts, ortLog.callback, uintptr(id)); status != nil {
		err := errors.New(ortLog.errorMessage(status))
		ortLog.releaseStatus(status)
		ortLog.loggers.Delete(id)
		return nil, fmt.Errorf("SetUserLoggingFunction: %w", err)
	}
	return func() { ortLog.loggers.Delete(id) }, nil
}

// sessionOptionsPointer returns the OrtSessionOptions* inside opts (an
// unexported field of onnxruntime_go's type).
func sessionOptionsPointer(opts *ort.SessionOptions) (unsafe.Pointer, error) {
	f := reflect.ValueOf(opts).Elem().FieldByName("o")
	if !f.IsValid() || f.Kind() != reflect.Pointer {
		return nil, errors.New("onnxruntime_go's SessionOptions has no C pointer field o")
	}
	p := f.UnsafePointer()
	if p == nil {
		return nil, errors.New("session options already destroyed")
	}
	return p, nil
}

func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
