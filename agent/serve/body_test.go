package serve

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/versions"
	agentruntime "github.com/drover-ml/drover/shared/runtime"
)

// emptyServer is a Server over a set without models.
func emptyServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	set, err := versions.New(versions.Config{Backend: &agentruntime.ONNX{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := set.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return New(cfg, set, nil, nil)
}

const tinyBody = `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`

// TestDeclaredSizeIsNotAllocated is the drill for a Content-Length that
// lies: a tiny body that declares 60 MiB (under max_request_bytes) is read
// into a buffer that grows as bytes arrive; the declared size is never
// reserved.
func TestDeclaredSizeIsNotAllocated(t *testing.T) {
	s := emptyServer(t, Config{MaxRequestBytes: 64 << 20})
	h := s.Handler()
	const declared = 60 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 5 {
		r := httptest.NewRequest("POST", "/v2/models/lin/infer", strings.NewReader(tinyBody))
		r.ContentLength = declared
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusNotFound {
			t.Fatalf("status %d %s, want 404 (no such model)", rec.Code, rec.Body)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("5 requests of %d bytes declaring %d allocated %d bytes", len(tinyBody), declared, grew)
	}

	// The buffer itself: capped reservation, growth with what arrives.
	var buf bytes.Buffer
	if err := readBody(httptest.NewRecorder(), io.NopCloser(strings.NewReader(tinyBody)), declared, 64<<20, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != len(tinyBody) || buf.Cap() > maxPresize {
		t.Fatalf("read %d bytes into a buffer of capacity %d, want %d bytes and capacity <= %d", buf.Len(), buf.Cap(), len(tinyBody), maxPresize)
	}
	// A body bigger than the cap still arrives whole.
	big := bytes.Repeat([]byte("x"), 3*maxPresize)
	buf = bytes.Buffer{}
	if err := readBody(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(big)), int64(len(big)), 64<<20, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("body over the presize cap: err %v, %d bytes read of %d", err, buf.Len(), len(big))
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestAdmissionBeforeBody: with max_in_flight requests running, a new one
// is refused with 503 before a byte of its body is read.
func TestAdmissionBeforeBody(t *testing.T) {
	s := emptyServer(t, Config{MaxInFlight: 2})
	s.inFlight.Add(2)
	body := &countingReader{r: strings.NewReader(tinyBody)}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/lin/infer", body))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d %s, want 503", rec.Code, rec.Body)
	}
	if n := body.n.Load(); n != 0 {
		t.Fatalf("%d bytes of the refused request's body were read", n)
	}
	if n := s.inFlight.Load(); n != 2 {
		t.Fatalf("in flight %d after a refused request, want 2", n)
	}
	s.inFlight.Add(-2)
	// Admitted requests give their slot back, whatever the outcome.
	for _, b := range []string{tinyBody, "not json"} {
		rec = httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v2/models/lin/infer", strings.NewReader(b)))
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d %s", rec.Code, rec.Body)
		}
	}
	if n := s.inFlight.Load(); n != 0 {
		t.Fatalf("in flight %d after the requests ended, want 0", n)
	}
}

// TestMaxRequestBytesWithoutContentLength: a chunked body (no declared
// length) over max_request_bytes is cut at the limit: 413.
func TestMaxRequestBytesWithoutContentLength(t *testing.T) {
	s := emptyServer(t, Config{MaxRequestBytes: 1 << 10})
	body := &countingReader{r: io.MultiReader(strings.NewReader(`{"inputs": [{"name": "x", "data": [`), strings.NewReader(strings.Repeat("1,", 1<<20)))}
	r := httptest.NewRequest("POST", "/v2/models/lin/infer", body)
	r.ContentLength = -1
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "max_request_bytes") {
		t.Fatalf("status %d %s, want 413", rec.Code, rec.Body)
	}
	if n := body.n.Load(); n > 64<<10 {
		t.Fatalf("read %d bytes of a body over a 1 KiB limit", n)
	}
}

// TestSlowBodyGivesItsSlotBack: an admitted request whose body stops
// arriving is cut after request_timeout (400) and gives its in-flight slot
// back, so slow senders cannot hold every slot.
func TestSlowBodyGivesItsSlotBack(t *testing.T) {
	s := emptyServer(t, Config{RequestTimeout: 100 * time.Millisecond, MaxInFlight: 1})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v2/models/lin/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\""); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "read request body") {
		t.Fatalf("stalled body: %d %s, want 400", resp.StatusCode, b)
	}
	if n := s.inFlight.Load(); n != 0 {
		t.Fatalf("in flight %d after the stalled request was answered, want 0", n)
	}
	// The slot serves the next request.
	r, err := http.Post(srv.URL+"/v2/models/lin/infer", "application/json", strings.NewReader(tinyBody))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("next request: %d, want 404", r.StatusCode)
	}
}
