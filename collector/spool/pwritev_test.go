package spool

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestPwritev writes more buffers than one call takes, empty ones among
// them, at an offset, and reads back their concatenation.
func TestPwritev(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bufs [][]byte
	var want bytes.Buffer
	want.WriteString("head")
	for i := range 3*maxIov + 7 {
		b := bytes.Repeat([]byte{byte(i)}, i%5) // every fifth is empty
		bufs = append(bufs, b)
		want.Write(b)
	}
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if err := pwritev(f, bufs, 4); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file holds %d bytes, want %d (first difference matters)", len(got), want.Len())
	}
	if err := pwritev(f, [][]byte{{}, {}}, 0); err != nil {
		t.Errorf("only empty buffers: %v", err)
	}
}
