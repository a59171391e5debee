package durable

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWritebackWritesEverything writes more than a few writeback windows
// from a non-zero offset and reads the file back.
func TestWritebackWritesEverything(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := []byte("resumed-")
	if _, err := f.Write(head); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), (3*WritebackEvery+12345)/16)
	wb := &Writeback{W: f, F: f, Off: int64(len(head))}
	for p := want; len(p) > 0; {
		k := min(len(p), 100_003)
		n, err := wb.Write(p[:k])
		if err != nil || n != k {
			t.Fatalf("write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if wb.Off != int64(len(head)+len(want)) {
		t.Fatalf("offset %d, want %d", wb.Off, len(head)+len(want))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(head, want...)) {
		t.Fatalf("file differs: %d bytes, want %d", len(got), len(head)+len(want))
	}
}

func TestSyncDirMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("fsync of a missing directory succeeded")
	}
}

// TestWriteFile: the file is replaced whole, with its mode; no temporary
// file stays; a temporary file left by a crash is overwritten; a directory
// that does not exist is an error that leaves nothing.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := os.WriteFile(path+".tmp", []byte("left by a crash, longer than what comes"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"first\n", "second\n"} {
		if err := WriteFile(path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v (%v), want 0640", st.Mode().Perm(), err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file still there: %v", err)
	}
	missing := filepath.Join(dir, "no-such-dir", "state")
	if err := WriteFile(missing, []byte("x"), 0o640); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}
