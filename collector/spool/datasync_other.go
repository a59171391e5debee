//go:build !linux

package spool

import "os"

// datasync is fsync where fdatasync is unavailable (on macOS, f.Sync uses
// F_FULLFSYNC).
func datasync(f *os.File) error { return f.Sync() }
