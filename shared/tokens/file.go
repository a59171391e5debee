package tokens

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CheckEvery bounds how often a File looks at its file on disk.
const CheckEvery = time.Second

// File is a tokens_file held in memory and read again when its size or
// modification time changes. Lookup itself checks, at most once per
// CheckEvery and never more than one caller at a time (the others use the
// entries they find), so a File needs no goroutine and nothing to stop.
// A file that no longer reads or decodes keeps the entries it had in force;
// the error goes to onError once per change of the file. Safe for
// concurrent use.
type File struct {
	path    string
	onError func(error)
	now     func() time.Time

	checked atomic.Int64 // unix nanoseconds of the last check
	mu      sync.Mutex   // held by the one caller that checks
	stamp   string       // guarded by mu
	byHash  atomic.Pointer[map[[32]byte]Entry]
}

// OpenFile reads the tokens_file at path; it must read and decode.
// onError (nil: ignored) receives the errors of later reloads.
func OpenFile(path string, onError func(error)) (*File, error) {
	f := &File{path: path, onError: onError, now: time.Now}
	stamp := stampOf(path)
	if err := f.load(); err != nil {
		return nil, err
	}
	f.stamp = stamp
	f.checked.Store(f.now().UnixNano())
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

func stampOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
}

func (f *File) load() error {
	es, err := ReadFile(f.path)
	if err != nil {
		return err
	}
	m := make(map[[32]byte]Entry, len(es))
	for _, e := range es {
		sum, _ := ParseSum(e.SHA256) // ParseFile checked it
		m[sum] = e
	}
	f.byHash.Store(&m)
	return nil
}

// Len returns how many tokens the file lists now.
func (f *File) Len() int { return len(*f.byHash.Load()) }

// Lookup returns the entry whose hash is token's sha256. The lookup is by
// the hash of what the client sent, so its time says nothing useful about
// the hashes held.
func (f *File) Lookup(token string) (Entry, bool) {
	f.maybeReload()
	e, ok := (*f.byHash.Load())[sha256.Sum256([]byte(token))]
	return e, ok
}

// maybeReload reads the file again if CheckEvery has passed since the last
// check and its stamp changed.
func (f *File) maybeReload() {
	now := f.now()
	if now.UnixNano()-f.checked.Load() < int64(CheckEvery) || !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	f.checked.Store(now.UnixNano())
	stamp := stampOf(f.path)
	if stamp == f.stamp {
		return
	}
	f.stamp = stamp // a bad file is reported once, not at every check
	if err := f.load(); err != nil && f.onError != nil {
		f.onError(fmt.Errorf("tokens_file: keeping the tokens it listed before: %w", err))
	}
}
