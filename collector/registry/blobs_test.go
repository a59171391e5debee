package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fileStore opens a file:// store in a temporary directory.
func fileStore(t testing.TB) (*Blobs, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	u, err := FileURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenBlobs(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

// s3URL starts an in-process S3 server (gofakes3) with one bucket and
// returns the s3:// URL the real AWS SDK v2 client reaches it by.
func s3URL(t *testing.T) string {
	u, _ := s3Server(t)
	return u
}

// s3Server is s3URL that also returns the server, to stop it early.
func s3Server(t *testing.T) (string, *httptest.Server) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("drover"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}}
	return "s3://drover?" + q.Encode(), srv
}

func s3Store(t *testing.T) *Blobs {
	t.Helper()
	s, err := OpenBlobs(context.Background(), s3URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stores returns one store per tested backend.
func stores(t *testing.T) map[string]*Blobs {
	fs, _ := fileStore(t)
	return map[string]*Blobs{"file": fs, "s3": s3Store(t)}
}

// cutReader returns the first n bytes of b, then fails.
type cutReader struct {
	b []byte
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b, c.n = c.b[k:], c.n-k
	return k, nil
}

func TestBlobsRoundTripAndRanges(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(300_000, 1)
	d := digestOf(data)
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			n, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Put = %d, %v; want %d, nil", n, err, len(data))
			}
			r, err := s.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, not the %d stored", len(got), len(data))
			}
			if r.Size() != int64(len(data)) {
				t.Errorf("Size = %d, want %d", r.Size(), len(data))
			}
			// Seek, as http.ServeContent does for a Range request.
			if _, err := r.Seek(1000, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			part := make([]byte, 10)
			if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, data[1000:1010]) {
				t.Errorf("after Seek(1000) read %x, %v; want %x", part, err, data[1000:1010])
			}
			_ = r.Close()

			rr, err := s.OpenRange(ctx, d, 299_990, -1)
			if err != nil {
				t.Fatal(err)
			}
			tail, _ := io.ReadAll(rr)
			_ = rr.Close()
			if !bytes.Equal(tail, data[299_990:]) {
				t.Errorf("range from 299990 = %x, want %x", tail, data[299_990:])
			}

			// Storing the same content again reads and verifies it, and
			// stores nothing new; a wrong stream for it still fails.
			if _, err := s.Put(ctx, d, -1, bytes.NewReader(data)); err != nil {
				t.Errorf("second Put of the same content: %v", err)
			}
			if _, err := s.Put(ctx, d, -1, bytes.NewReader(data[1:])); !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("Put of other bytes under a stored digest = %v, want ErrDigestMismatch", err)
			}
			if _, err := s.Open(ctx, digestOf([]byte("absent"))); !errors.Is(err, ErrNotFound) {
				t.Errorf("Open(absent) = %v, want ErrNotFound", err)
			}
			if _, err := s.Open(ctx, "../../etc/passwd"); !errors.Is(err, ErrInvalid) {
				t.Errorf("Open(bad digest) = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBlobsFailedWritesLeaveNothing(t *testing.T) {
	ctx := context.Background()
	small := randomBytes(100_000, 2)
	// Larger than s3blob's 5 MiB part, so S3 takes the multipart path.
	large := randomBytes(6<<20+123, 3)
	cases := map[string]struct {
		data   []byte
		digest string
		size   int64
		r      func(b []byte) io.Reader
		want   error
	}{
		"wrong digest":           {small, digestOf([]byte("other")), -1, func(b []byte) io.Reader { return bytes.NewReader(b) }, ErrDigestMismatch},
		"cut upload":             {small, digestOf(small), -1, func(b []byte) io.Reader { return &cutReader{b, 50_000} }, nil},
		"truncated":              {small, digestOf(small), int64(len(small)), func(b []byte) io.Reader { return bytes.NewReader(b[:50_000]) }, ErrDigestMismatch},
		"too long":               {small, digestOf(small), 10, func(b []byte) io.Reader { return bytes.NewReader(b) }, ErrDigestMismatch},
		"multipart wrong digest": {large, digestOf(small), -1, func(b []byte) io.Reader { return bytes.NewReader(b) }, ErrDigestMismatch},
		"multipart cut":          {large, digestOf(large), -1, func(b []byte) io.Reader { return &cutReader{b, 5<<20 + 1<<19} }, nil},
	}
	for backend, s := range stores(t) {
		for name, c := range cases {
			t.Run(backend+"/"+name, func(t *testing.T) {
				_, err := s.Put(ctx, c.digest, c.size, c.r(c.data))
				if err == nil {
					t.Fatal("Put succeeded")
				}
				if c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("Put = %v, want %v", err, c.want)
				}
				if ok, err := s.Exists(ctx, c.digest); err != nil || ok {
					t.Fatalf("after a failed Put, Exists = %v, %v; want false", ok, err)
				}
			})
		}
	}
	// A file:// store keeps no temporary file either.
	fs, dir := fileStore(t)
	_, _ = fs.Put(ctx, digestOf(small), -1, &cutReader{small, 1000})
	_, _ = fs.Put(ctx, digestOf([]byte("x")), -1, bytes.NewReader(small))
	if left := listFiles(t, dir); len(left) != 0 {
		t.Errorf("failed writes left %v", left)
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

func TestBlobsSweep(t *testing.T) {
	ctx := context.Background()
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	for backend, s := range stores(t) {
		t.Run(backend, func(t *testing.T) {
			for _, x := range [][]byte{a, b, c} {
				if _, err := s.Put(ctx, digestOf(x), 1, bytes.NewReader(x)); err != nil {
					t.Fatal(err)
				}
			}
			marks := 0
			mark := func(context.Context) (func(string) bool, error) {
				marks++
				return func(d string) bool { return d == digestOf(a) }, nil
			}
			// Within the grace period nothing is swept.
			deleted, err := s.Sweep(ctx, time.Hour, time.Now(), mark)
			if err != nil || len(deleted) != 0 {
				t.Fatalf("Sweep within grace = %v, %v; want nothing", deleted, err)
			}
			deleted, err = s.Sweep(ctx, time.Hour, time.Now().Add(2*time.Hour), mark)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(deleted)
			want := []string{digestOf(b), digestOf(c)}
			slices.Sort(want)
			if !slices.Equal(deleted, want) {
				t.Fatalf("Sweep deleted %v, want %v", deleted, want)
			}
			if marks != 1 {
				t.Errorf("mark ran %d times, want once (not when nothing is old enough)", marks)
			}
			for x, wantOK := range map[string]bool{digestOf(a): true, digestOf(b): false, digestOf(c): false} {
				if ok, err := s.Exists(ctx, x); err != nil || ok != wantOK {
					t.Errorf("Exists(%s) = %v, %v; want %v", x[:8], ok, err, wantOK)
				}
			}
		})
	}
}

// TestStagingAnOldBlobMakesItYoung: a publish that stages a blob which
// exists but is older than the refresh age writes it again, so garbage
// collection (which takes only blobs older than its grace) cannot take it
// between the staging and the commit; a sweep that listed the blob while
// it was old keeps it once it is young again.
func TestStagingAnOldBlobMakesItYoung(t *testing.T) {
	s, dir := fileStore(t)
	s.refresh = time.Hour
	ctx := context.Background()
	data := []byte("weights")
	d := digestOf(data)
	if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sha256", d)
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Fatalf("after staging the old blob again: %v, %v; want it written now", fi, err)
	}
	// A young blob is only verified, not written again.
	young := time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := os.Chtimes(path, young, young); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(young) {
		t.Errorf("a young blob was written again (mtime %v, want %v)", fi.ModTime(), young)
	}

	// The sweep lists the blob as old, then a publish writes it again
	// before the sweep deletes: it stays.
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	deleted, err := s.Sweep(ctx, time.Hour, time.Now(), func(context.Context) (func(string) bool, error) {
		if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
			return nil, err
		}
		return func(string) bool { return false }, nil
	})
	if err != nil || len(deleted) != 0 {
		t.Errorf("sweep = %v, %v; want nothing deleted", deleted, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("blob gone: %v", err)
	}
}
