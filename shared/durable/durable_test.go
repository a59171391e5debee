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
