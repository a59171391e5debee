// Package durable holds the file-system steps that make written data
// survive a crash, written once for every package that stores files:
// fsyncing a directory after creating, renaming or removing entries in it,
// replacing a small file atomically, and starting a file's disk writeback
// while it is still being written.
package durable

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SyncDir fsyncs the directory dir, so that entries created, renamed or
// removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// WriteFile replaces path with data atomically and durably: it writes
// path+".tmp" (mode perm), fsyncs it, renames it over path and fsyncs the
// directory. A reader sees the old file or the new one, never a part; after
// a crash, the old one or the new one. The temporary file is removed when a
// step fails; one left by a crash is overwritten by the next call.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WritebackEvery is how many bytes written through a Writeback make it ask
// the kernel to start writing them to disk.
const WritebackEvery = 8 << 20

// Writeback passes writes to W, which writes them to F at consecutive
// offsets starting at Off, and every WritebackEvery bytes starts the disk
// writeback of what came since (StartWriteback) without waiting for it. The
// disk then works while the rest of the file arrives, and the fsync at the
// end waits for the tail only. W may be F itself or a writer in front of it
// (a bucket writer whose temporary file is F).
type Writeback struct {
	W   io.Writer
	F   *os.File
	Off int64

	queued int64
	init   bool
}

// Write writes p to W.
func (b *Writeback) Write(p []byte) (int, error) {
	if !b.init {
		b.queued, b.init = b.Off, true
	}
	n, err := b.W.Write(p)
	b.Off += int64(n)
	if b.Off-b.queued >= WritebackEvery {
		StartWriteback(b.F, b.queued, b.Off-b.queued)
		b.queued = b.Off
	}
	return n, err
}
