package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://: compiled in, untested (no fake server at hand)
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob" // gs://: compiled in, untested (no fake server at hand)
	_ "gocloud.dev/blob/s3blob"  // s3://: AWS SDK v2, tested against gofakes3
	"gocloud.dev/gcerrors"

	"github.com/drover-ml/drover/shared/durable"
	sharedredact "github.com/drover-ml/drover/shared/redact"
)

// blobPrefix is the key prefix of every stored file: the object of digest
// d (64 lowercase hex digits of its sha256) is blobPrefix+d.
const blobPrefix = "sha256/"

// Errors the registry returns, wrapped with what was being done; test them
// with errors.Is.
var (
	// ErrNotFound: no such model, version or blob.
	ErrNotFound = errors.New("not found")
	// ErrDigestMismatch: the bytes received do not have the sha256 (or the
	// size) the publisher declared. Permanent: the upload must be redone.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrInvalid: a bad name, version, digest, file list or manifest.
	// Permanent.
	ErrInvalid = errors.New("invalid")
)

// Blobs stores files by content in an object store: each file once, under
// its sha256. It is safe for concurrent use; Close releases the bucket.
type Blobs struct {
	bucket *blob.Bucket
	// dir is the directory of a file:// store ("" for others): writes into
	// it are fsynced, file and directory, before they are acknowledged.
	dir string
	// refresh: Put rewrites an existing blob last written longer ago than
	// this, instead of only verifying the bytes, so that a blob a publish
	// stages again is as young as the publish (garbage collection takes
	// only blobs older than its grace period; Registry sets this to half
	// of it). 0: never rewrite.
	refresh time.Duration
}

// OpenBlobs opens the object store at rawURL: file:///abs/dir (created if
// missing), s3://bucket?region=..&endpoint=..&use_path_style=true (AWS SDK
// v2, credentials from the SDK's default chain), gs://bucket or
// azblob://container. For file:// it sets fileblob's no_tmp_dir (temporary
// files next to the final ones, so the rename never crosses devices),
// create_dir and metadata=skip unless the URL sets them.
func OpenBlobs(ctx context.Context, rawURL string) (*Blobs, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open blob store: %s", sharedredact.Text(err.Error()))
	}
	var dir string
	if u.Scheme == fileblob.Scheme {
		q := u.Query()
		for k, v := range map[string]string{"no_tmp_dir": "true", "create_dir": "true", "metadata": "skip"} {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		dir = filepath.FromSlash(u.Path)
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("open blob store %s: file:// needs an absolute path", redact(u))
		}
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", redact(u), err)
	}
	return &Blobs{bucket: b, dir: dir}, nil
}

// FileURL returns the file:// URL of directory dir, the default store
// (<data dir>/registry/blobs).
func FileURL(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: fileblob.Scheme, Path: filepath.ToSlash(abs)}).String(), nil
}

// redact drops the query (which may hold credentials) from u for messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.User = nil
	return c.String()
}

// Close releases the bucket. Readers opened before stay usable only until
// they are closed.
func (s *Blobs) Close() error { return s.bucket.Close() }

// ValidDigest reports whether d is a sha256 as the registry writes it: 64
// lowercase hex digits.
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for _, c := range []byte(d) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func blobKey(digest string) string { return blobPrefix + digest }

// Put streams r into the store under digest, hashing the bytes as they
// arrive, and returns the number of bytes stored. size is the declared
// length, or -1 if unknown. When the stream ends, the sha256 (and the
// size, if declared) must match: otherwise, or if r fails, or ctx ends,
// the write is aborted and nothing is stored under digest's key (fileblob
// renames a temporary file only on a clean Close; S3 commits a PutObject
// or multipart upload only then; both abort when the write's context is
// cancelled, which Put does before closing a failed write). An aborted S3
// multipart upload may leave unreferenced parts for the bucket's lifecycle
// rule to expire; never an object.
//
// Put reads r only up to its end and never buffers a whole file. If the
// blob already exists, r is still read and verified (so the result does
// not depend on what others stored) but nothing is written. A file://
// store fsyncs the file and its directory before Put returns.
func (s *Blobs) Put(ctx context.Context, digest string, size int64, r io.Reader) (n int64, err error) {
	if !ValidDigest(digest) {
		return 0, fmt.Errorf("store blob %q: %w: digest must be 64 lowercase hex digits", digest, ErrInvalid)
	}
	exists, err := s.bucket.Exists(ctx, blobKey(digest))
	if err != nil {
		return 0, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if exists && s.refresh > 0 {
		attrs, err := s.bucket.Attributes(ctx, blobKey(digest))
		switch {
		case gcerrors.Code(err) == gcerrors.NotFound: // collected meanwhile: write it again
			exists = false
		case err != nil:
			return 0, fmt.Errorf("store blob %s: %w", digest, err)
		case time.Since(attrs.ModTime) > s.refresh: // old: rewrite it, so it is young
			exists = false
		}
	}
	if exists {
		vr := &verifier{r: r, h: sha256.New(), want: digest, size: size}
		n, err := io.Copy(io.Discard, vr)
		if err != nil {
			return n, fmt.Errorf("store blob %s: %w", digest, err)
		}
		return n, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var f *os.File
	w, err := s.bucket.NewWriter(wctx, blobKey(digest), &blob.WriterOptions{
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			as(&f) // fileblob hands out its temporary *os.File; others do not
			return nil
		},
	})
	if err != nil {
		return 0, fmt.Errorf("store blob %s: %w", digest, err)
	}
	// The bytes are hashed in another goroutine while they are written,
	// so a publish costs about the slower of the two, not their sum.
	var dst io.Writer = w
	if f != nil {
		dst = &durable.Writeback{W: w, F: f}
	}
	n, err = copyHashed(dst, r, digest, size)
	if err == nil && f != nil {
		err = f.Sync()
	}
	if err != nil {
		cancel() // abort: nothing may appear under the final key
		_ = w.Close()
		return n, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if err := w.Close(); err != nil {
		return n, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if s.dir != "" {
		if err := durable.SyncDir(filepath.Join(s.dir, filepath.FromSlash(blobPrefix))); err != nil {
			return n, fmt.Errorf("store blob %s: %w", digest, err)
		}
	}
	return n, nil
}

// copyHashed copies r to w in 64 KiB blocks (16 in flight) while a second goroutine
// hashes each block, and checks at r's end that the sha256 is want and,
// when size >= 0, that exactly size bytes came (else ErrDigestMismatch;
// reading stops as soon as more than size bytes came). Buffers are
// reused only once both the write and the hash of their block are done;
// the hashing goroutine has ended when copyHashed returns.
func copyHashed(w io.Writer, r io.Reader, want string, size int64) (int64, error) {
	// Small blocks keep the socket drained while a block is written (1
	// MiB blocks halved the throughput on loopback: bench/registry).
	const block, nbufs = 64 << 10, 16
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	var bufs [nbufs][]byte
	for i := range bufs {
		bufs[i] = make([]byte, block)
	}
	h := sha256.New()
	jobs := make(chan []byte, nbufs)
	hashed := make(chan struct{}, nbufs)
	go func() {
		defer close(hashed)
		for b := range jobs {
			h.Write(b)
			hashed <- struct{}{}
		}
	}()
	var (
		n    int64
		acks int // blocks hashed so far
		err  error
	)
	for k := 0; ; k++ {
		// Block k reuses the buffer of block k-nbufs: wait for its hash.
		for ; acks < k-nbufs+1; acks++ {
			<-hashed
		}
		buf := bufs[k%nbufs]
		m, rerr := io.ReadFull(r, buf)
		n += int64(m)
		if size >= 0 && n > size {
			err = fmt.Errorf("%w: more than the declared %d bytes", ErrDigestMismatch, size)
			break
		}
		if m > 0 {
			jobs <- buf[:m]
			if _, werr := w.Write(buf[:m]); werr != nil {
				err = werr
				break
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = fmt.Errorf("read after %d bytes: %w", n, rerr)
			break
		}
	}
	close(jobs)
	for range hashed { // until the hashing goroutine has ended
	}
	if err != nil {
		return n, err
	}
	if size >= 0 && n != size {
		return n, fmt.Errorf("%w: got %d bytes, declared %d", ErrDigestMismatch, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, fmt.Errorf("%w: got sha256 %s", ErrDigestMismatch, got)
	}
	return n, nil
}

// verifier passes r's bytes through a sha256 and, at r's end, returns
// ErrDigestMismatch instead of io.EOF if the digest or the declared size
// does not match, so whatever consumes it aborts rather than commits.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	want string
	size int64
	n    int64
	done bool  // r ended and everything matched
	err  error // the first error returned, sticky
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.done {
		return 0, io.EOF
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("%w: more than the declared %d bytes", ErrDigestMismatch, v.size)
		return n, v.err
	}
	switch {
	case err == io.EOF:
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("%w: got %d bytes, declared %d", ErrDigestMismatch, v.n, v.size)
			return n, v.err
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			v.err = fmt.Errorf("%w: got sha256 %s", ErrDigestMismatch, got)
			return n, v.err
		}
		v.done = true
		return n, io.EOF
	case err != nil:
		v.err = fmt.Errorf("read after %d bytes: %w", v.n, err)
		return n, v.err
	}
	return n, nil
}

// Open returns a reader of the whole blob digest: an io.ReadSeekCloser
// whose Size and ModTime serve HTTP ranges (http.ServeContent) and
// resumable downloads; the blob's ETag is its digest. The caller must
// Close it. A missing blob is ErrNotFound.
func (s *Blobs) Open(ctx context.Context, digest string) (*blob.Reader, error) {
	return s.OpenRange(ctx, digest, 0, -1)
}

// OpenRange returns a reader of length bytes of blob digest from offset
// (length < 0: to the end). A missing blob is ErrNotFound.
func (s *Blobs) OpenRange(ctx context.Context, digest string, offset, length int64) (*blob.Reader, error) {
	if !ValidDigest(digest) {
		return nil, fmt.Errorf("open blob %q: %w: digest must be 64 lowercase hex digits", digest, ErrInvalid)
	}
	r, err := s.bucket.NewRangeReader(ctx, blobKey(digest), offset, length, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("open blob %s: %w", digest, ErrNotFound)
		}
		return nil, fmt.Errorf("open blob %s: %w", digest, err)
	}
	return r, nil
}

// Exists reports whether blob digest is stored.
func (s *Blobs) Exists(ctx context.Context, digest string) (bool, error) {
	if !ValidDigest(digest) {
		return false, fmt.Errorf("stat blob %q: %w", digest, ErrInvalid)
	}
	ok, err := s.bucket.Exists(ctx, blobKey(digest))
	if err != nil {
		return false, fmt.Errorf("stat blob %s: %w", digest, err)
	}
	return ok, nil
}

// Size returns the stored size of blob digest; ok is false when no such
// blob is stored.
func (s *Blobs) Size(ctx context.Context, digest string) (size int64, ok bool, err error) {
	if !ValidDigest(digest) {
		return 0, false, fmt.Errorf("stat blob %q: %w", digest, ErrInvalid)
	}
	a, err := s.bucket.Attributes(ctx, blobKey(digest))
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("stat blob %s: %w", digest, err)
	}
	return a.Size, true, nil
}

// Sweep deletes every object under the blob prefix that is older than
// grace (by its modification time) and whose digest the keep function
// returned by mark does not report; keys that are not digests (a crashed
// writer's temporary file) go the same way. It lists first and calls mark
// after the listing, so a version recorded while the listing ran is still
// marked; a blob a publish in progress staged is younger than grace. It
// returns the digests (or keys) deleted; it stops at the first error,
// returning what it deleted so far.
func (s *Blobs) Sweep(ctx context.Context, grace time.Duration, now time.Time, mark func(context.Context) (keep func(digest string) bool, err error)) ([]string, error) {
	var candidates []string
	it := s.bucket.List(&blob.ListOptions{Prefix: blobPrefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("sweep blobs: list: %w", err)
		}
		if !obj.IsDir && now.Sub(obj.ModTime) >= grace {
			candidates = append(candidates, strings.TrimPrefix(obj.Key, blobPrefix))
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	keep, err := mark(ctx)
	if err != nil {
		return nil, fmt.Errorf("sweep blobs: mark: %w", err)
	}
	var deleted []string
	for _, d := range candidates {
		if ValidDigest(d) && keep(d) {
			continue
		}
		// A publish may have written the blob again since the listing
		// (Put rewrites old blobs): it is then young, and kept.
		if attrs, err := s.bucket.Attributes(ctx, blobKey(d)); err == nil && now.Sub(attrs.ModTime) < grace {
			continue
		}
		if err := s.bucket.Delete(ctx, blobKey(d)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return deleted, fmt.Errorf("sweep blobs: delete %s: %w", d, err)
		}
		deleted = append(deleted, d)
	}
	return deleted, nil
}
