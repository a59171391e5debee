// Package deps locates, and on request fetches, the native runtime libraries
// Drover needs but cannot vendor: ONNX Runtime (libonnxruntime.so) and the
// embedded ClickHouse engine (libchdb.so).
//
// Both come from pinned npm packages obtained with `npm pack`; the project
// never names a registry host. Fetched files live in a cache outside the
// checkout (see CacheDir) so that fresh clones and CI runs reuse them. Every
// artifact is pinned by the sha256 of its package tarball and of the extracted
// library, and Ensure re-hashes the cached library each time it runs so a
// corrupt file is detected and fetched again.
package deps

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Environment variables that override what the cache would provide.
const (
	// EnvCache overrides the cache directory.
	EnvCache = "DROVER_CACHE"
	// EnvONNXRuntimeLib names a libonnxruntime.so to use instead of the cached one.
	EnvONNXRuntimeLib = "ONNXRUNTIME_LIB"
	// EnvCHDBLib names a libchdb.so to use instead of the cached one.
	EnvCHDBLib = "DROVER_CHDB_LIB"
	// EnvClickHouseDSN points Drover (and its tests) at a running ClickHouse
	// server; no embedded engine is needed then.
	EnvClickHouseDSN = "DROVER_CLICKHOUSE_DSN"
)

// Artifact is one pinned native library inside an npm package.
type Artifact struct {
	// Name is the short name used in the cache layout and in messages.
	Name string
	// Package and Version identify the npm package.
	Package string
	Version string
	// TarballSize is the size of the package tarball in bytes (for progress).
	TarballSize int64
	// TarballSHA256 is the sha256 of the tarball `npm pack` produces.
	TarballSHA256 string
	// Member is the path of the library inside the tarball.
	Member string
	// File is the library's file name in the cache.
	File string
	// SHA256 is the sha256 of the extracted library.
	SHA256 string
	// Env is the variable that, when set, replaces this artifact.
	Env string
}

// Spec returns the package spec given to npm, e.g. "onnxruntime-node@1.30.0".
// With an empty Version, Package is passed as is (a local folder or tarball).
func (a Artifact) Spec() string {
	if a.Version == "" {
		return a.Package
	}
	return a.Package + "@" + a.Version
}

// Path returns where the library lives inside cache.
func (a Artifact) Path(cache string) string {
	return filepath.Join(cache, a.Name, a.Version, a.File)
}

const (
	ortPackage = "onnxruntime-node"
	ortVersion = "1.30.0"
	ortTarSize = 113507888
	ortTarSum  = "6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75"
)

var onnxRuntime = map[string]Artifact{
	"linux/amd64": {
		Name: "onnxruntime", Package: ortPackage, Version: ortVersion,
		TarballSize: ortTarSize, TarballSHA256: ortTarSum,
		Member: "package/bin/napi-v6/linux/x64/libonnxruntime.so.1",
		File:   "libonnxruntime.so",
		SHA256: "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23",
		Env:    EnvONNXRuntimeLib,
	},
	"linux/arm64": {
		Name: "onnxruntime", Package: ortPackage, Version: ortVersion,
		TarballSize: ortTarSize, TarballSHA256: ortTarSum,
		Member: "package/bin/napi-v6/linux/arm64/libonnxruntime.so.1",
		File:   "libonnxruntime.so",
		SHA256: "1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76",
		Env:    EnvONNXRuntimeLib,
	},
}

var chdb = map[string]Artifact{
	"linux/amd64": {
		Name: "chdb", Package: "@chdb/lib-linux-x64-gnu", Version: "26.7.3-stable.1",
		TarballSize:   177817999,
		TarballSHA256: "c0d32b129e988f2b9a9a31c9141aecf5e1e2453f9a079efc4d36ab8e3f92b2ad",
		Member:        "package/libchdb.so",
		File:          "libchdb.so",
		SHA256:        "36ad4e999882821ef13cf2d0f52c93f48e6ee1b4498b35a201c23ce4b8d15bf5",
		Env:           EnvCHDBLib,
	},
}

// ErrUnsupported is returned when no pinned build exists for this platform.
var ErrUnsupported = errors.New("no pinned build for this platform")

func platform() string { return runtime.GOOS + "/" + runtime.GOARCH }

// ONNXRuntime returns the pinned ONNX Runtime artifact for this platform.
func ONNXRuntime() (Artifact, error) {
	a, ok := onnxRuntime[platform()]
	if !ok {
		return Artifact{}, fmt.Errorf("onnxruntime on %s: %w (linux/amd64 and linux/arm64 are pinned); set %s=/path/to/libonnxruntime.so",
			platform(), ErrUnsupported, EnvONNXRuntimeLib)
	}
	return a, nil
}

// CHDB returns the pinned ClickHouse engine artifact for this platform.
func CHDB() (Artifact, error) {
	a, ok := chdb[platform()]
	if !ok {
		return Artifact{}, fmt.Errorf("embedded clickhouse on %s: %w (only linux/amd64 is pinned); put a clickhouse binary on PATH or set %s=clickhouse://host:9000",
			platform(), ErrUnsupported, EnvClickHouseDSN)
	}
	return a, nil
}

// CacheDir returns the cache directory: $DROVER_CACHE, else
// $XDG_CACHE_HOME/drover, else ~/.cache/drover. It does not create it.
func CacheDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "drover"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory: %w; set %s", err, EnvCache)
	}
	return filepath.Join(home, ".cache", "drover"), nil
}

// locate returns the override from a.Env or the cached path, without
// hashing. It fails with a message that says how to get the file.
func locate(a Artifact, getErr error) (string, error) {
	env := a.Env
	if getErr != nil {
		return "", getErr
	}
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	p := a.Path(cache)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %s is not in the cache (%s): run `make deps` or set %s", a.Name, a.Version, p, env)
	}
	return p, nil
}

// ONNXRuntimeLibrary returns the path of libonnxruntime.so to load: the file
// named by $ONNXRUNTIME_LIB, else the cached pinned build.
func ONNXRuntimeLibrary() (string, error) {
	a, err := ONNXRuntime()
	if err != nil && os.Getenv(EnvONNXRuntimeLib) != "" {
		a, err = Artifact{Name: "onnxruntime", Env: EnvONNXRuntimeLib}, nil
	}
	return locate(a, err)
}

// CHDBLibrary returns the path of libchdb.so: the file named by
// $DROVER_CHDB_LIB, else the cached pinned build.
func CHDBLibrary() (string, error) {
	a, err := CHDB()
	if err != nil && os.Getenv(EnvCHDBLib) != "" {
		a, err = Artifact{Name: "chdb", Env: EnvCHDBLib}, nil
	}
	return locate(a, err)
}

// ClickHouseBinary returns the path of a `clickhouse` binary on PATH, or "".
func ClickHouseBinary() string {
	p, err := exec.LookPath("clickhouse")
	if err != nil {
		return ""
	}
	return p
}

// NeedCHDB reports whether the embedded engine library is needed: neither a
// server DSN nor a clickhouse binary is available.
func NeedCHDB() bool {
	return os.Getenv(EnvClickHouseDSN) == "" && ClickHouseBinary() == ""
}
