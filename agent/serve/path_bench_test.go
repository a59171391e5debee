package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
	"github.com/drover-ml/drover/shared/testmodels"
)

// BenchmarkInferPath measures the agent's own request path without a
// transport: the REST handler (binary extension and JSON) and the gRPC
// method called directly, on a two-feature linear model, so that the
// allocations per request (allocs/op, B/op) are the agent's and the
// runtime's only. The client's context is a cancelable one, as net/http
// and grpc-go give a handler.
func BenchmarkInferPath(b *testing.B) {
	tiny, err := testmodels.Linear("x", "y", [][]float32{{1}, {2}}, []float32{0})
	if err != nil {
		b.Fatal(err)
	}
	s := benchServer(b, map[string][]byte{"tiny": tiny})
	h := s.Handler()
	raw, _ := oip.AppendRaw(nil, []float32{1, 2})
	hdr := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, len(raw))
	rest := map[string]struct {
		body   []byte
		header http.Header
	}{
		"binary": {append([]byte(hdr), raw...), http.Header{"Content-Type": {"application/octet-stream"}, headerJSONLen: {strconv.Itoa(len(hdr))}}},
		"json":   {[]byte(`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}`), http.Header{"Content-Type": {"application/json"}}},
	}
	for _, name := range []string{"binary", "json"} {
		in := rest[name]
		b.Run("rest/"+name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			body := &rewindBody{}
			r, err := http.NewRequest("POST", "/v2/models/tiny/infer", body)
			if err != nil {
				b.Fatal(err)
			}
			r.Header = in.header
			r.ContentLength = int64(len(in.body))
			base, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				body.Reset(in.body)
				ctx, done := context.WithCancel(base)
				h.ServeHTTP(w, r.WithContext(ctx))
				done()
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
	b.Run("grpc/raw", func(b *testing.B) {
		g := &grpcService{s: s}
		req := &pb.ModelInferRequest{ModelName: "tiny",
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}}},
			RawInputContents: [][]byte{raw}}
		base, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			ctx, done := context.WithCancel(base)
			if _, err := g.ModelInfer(ctx, req); err != nil {
				b.Fatal(err)
			}
			done()
		}
	})
}

// discardWriter is a ResponseWriter that keeps the status, drops the body
// and takes read deadlines.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

// SetReadDeadline accepts the handler's deadlines, as net/http's writer
// does (http.ResponseController).
func (w *discardWriter) SetReadDeadline(time.Time) error { return nil }

// rewindBody is a request body that can be read again.
type rewindBody struct{ bytes.Reader }

func (r *rewindBody) Close() error { return nil }

var _ io.ReadCloser = (*rewindBody)(nil)
