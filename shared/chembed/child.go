package chembed

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// envChild marks a re-executed process as the engine child; its value is the
// path of libchdb.so. The child's argv (after argv[0]) is handed to
// chdb_query_cmdline unchanged.
const envChild = "DROVER_CHEMBED_LIB"

// The engine installs its own signal handlers, so it must not share a process
// with a Go program doing other work. Any binary that links this package can
// serve as the child: Start re-executes os.Executable() with envChild set, and
// this init runs the engine before main (or a test binary's TestMain) ever
// starts, then exits with the engine's status.
func init() {
	lib := os.Getenv(envChild)
	if lib == "" {
		return
	}
	os.Exit(runChild(lib, os.Args[1:]))
}

func runChild(lib string, args []string) int {
	runtime.LockOSThread()
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chembed: dlopen %s: %v\n", lib, err)
		return 2
	}
	var queryCmdline func(argc int32, argv **byte) uintptr
	var resultError func(res uintptr) *byte
	purego.RegisterLibFunc(&queryCmdline, h, "chdb_query_cmdline")
	purego.RegisterLibFunc(&resultError, h, "chdb_result_error")

	// chdb expects a C argv whose first element is the program name.
	argv := make([]*byte, 0, len(args)+2)
	keep := make([][]byte, 0, len(args)+1)
	for _, a := range append([]string{"clickhouse"}, args...) {
		b := append([]byte(a), 0)
		keep = append(keep, b)
		argv = append(argv, &b[0])
	}
	argv = append(argv, nil)
	res := queryCmdline(int32(len(args)+1), &argv[0])
	runtime.KeepAlive(keep)
	if res == 0 {
		fmt.Fprintln(os.Stderr, "chembed: chdb_query_cmdline returned no result")
		return 1
	}
	if e := resultError(res); e != nil {
		fmt.Fprintf(os.Stderr, "chembed: engine: %s\n", cString(e))
		return 1
	}
	return 0
}

func cString(p *byte) string {
	var b []byte
	for ptr := p; *ptr != 0; ptr = (*byte)(unsafe.Add(unsafe.Pointer(ptr), 1)) {
		b = append(b, *ptr)
	}
	return string(b)
}
