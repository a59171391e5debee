// Package ingest receives OTLP (gRPC and HTTP, protobuf and JSON) metrics
// and logs, makes them durable, and writes them to ClickHouse.
//
// The path of a request: a receiver decodes it with the OTel Collector's
// pdata packages (malformed → 400 / InvalidArgument; the protobuf metrics
// agents send go straight to rows instead, protometrics.go), hands the OTLP
// protobuf to the Sink, which appends it to the durable spool, and only then
// acknowledges it. A full spool answers 429 / RESOURCE_EXHAUSTED with a
// retry delay so senders back off; nothing is dropped silently. The Writer
// reads the spool in order, converts records to rows, inserts them into
// ClickHouse in large batches with a deduplication token per batch, and acks
// the spool.
package ingest

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"golang.org/x/net/netutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/lifecycle"
	"github.com/drover-ml/drover/shared/recovery"
)

// Kind says what an OTLP payload holds.
type Kind byte

// Payload kinds; the values are stored in the spool, never change them.
const (
	KindMetrics Kind = 1
	KindLogs    Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindMetrics:
		return "metrics"
	case KindLogs:
		return "logs"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ErrBackpressure is returned by a Sink that cannot take more data now
// (spool full); receivers answer 429 / RESOURCE_EXHAUSTED with RetryAfter.
var ErrBackpressure = errors.New("collector is over its spool limit; retry later")

// Sink makes an OTLP export request durable. Accept returns only when the
// payload is durable (the receiver then acknowledges it) or with an error.
// points is the number of data points or log records it holds; decoded is
// the request as the receiver decoded it, valid only during the call:
// pmetric.Metrics or plog.Logs, or *store.Batch, the rows of a metrics
// request the receiver converted itself (with ReceiverConfig.Resources;
// the sink may keep them).
type Sink interface {
	Accept(ctx context.Context, kind Kind, payload []byte, points int, decoded any) error
}

// ReceiverConfig configures the OTLP receivers.
type ReceiverConfig struct {
	GRPCAddr string // default ":4317"
	HTTPAddr string // default ":4318"
	// MaxRequestBytes bounds one request (decompressed); default 16 MiB.
	MaxRequestBytes int
	// RetryAfter is the back-off advertised when the spool is full.
	RetryAfter time.Duration
	// Limits are the rules every point and log record must meet (edge.go);
	// zero fields take their defaults.
	Limits Limits
	// Resources caches converted OTLP resources for the metrics requests
	// the receiver converts to rows itself (protometrics.go); nil: the
	// package default. Give the sink and the writer the same one.
	Resources *ResourceCache
	// GRPCOptions are added to the gRPC server's (after the panic
	// recovery): the authentication interceptors.
	GRPCOptions []grpc.ServerOption
	// HTTPWrap, if not nil, wraps the HTTP receiver's handler (inside the
	// panic recovery): the authentication.
	HTTPWrap func(http.Handler) http.Handler
	// DrainTimeout bounds how long requests in flight may take to finish
	// once the receivers are stopped; default 30s. What is still running
	// then is cut (the sender gets an error and retries).
	DrainTimeout time.Duration
	// TLS, when not nil, is served on both receivers: gRPC through
	// credentials.NewTLS (the handlers see the peer's TLSInfo), HTTP
	// through a TLS listener (requests carry their TLS state).
	TLS *tls.Config
	// MaxConnections bounds the connections each receiver holds open at
	// once; further connections wait in the kernel's accept queue until
	// one closes. 0: no limit.
	MaxConnections int
	// ReadHeaderTimeout bounds reading an HTTP request's headers and a
	// gRPC connection's handshake (TLS and HTTP/2 preface); default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole HTTP request, body included; 0:
	// no bound beyond ReadHeaderTimeout.
	ReadTimeout time.Duration
	// IdleTimeout closes HTTP keep-alive connections and gRPC connections
	// that have carried no request for that long; 0: never.
	IdleTimeout time.Duration
	// MaxConcurrentStreams bounds the calls in flight on one gRPC
	// connection; 0: gRPC's default (no bound).
	MaxConcurrentStreams uint32
}

// Receiver serves OTLP over gRPC and HTTP.
type Receiver struct {
	cfg   ReceiverConfig
	sink  Sink
	log   *slog.Logger
	stats *Stats

	mu     sync.Mutex
	routes []string // what Serve registered (Routes)
}

// httpRoutes are the OTLP/HTTP receiver's patterns and what each carries.
var httpRoutes = []struct {
	pattern string
	kind    Kind
}{{"POST /v1/metrics", KindMetrics}, {"POST /v1/logs", KindLogs}}

// Routes returns what the running receivers serve, as Serve registered it:
// every gRPC method ("/package.Service/Method", from the gRPC server's
// service info) and every HTTP pattern, sorted; nil before Serve. A test
// checks each against the required role, so no route can be added without
// the token check.
func (r *Receiver) Routes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.routes)
}

// NewReceiver builds the receivers; Run starts them.
func NewReceiver(cfg ReceiverConfig, sink Sink, stats *Stats, log *slog.Logger) *Receiver {
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = ":4317"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ":4318"
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 16 << 20
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if stats == nil {
		stats = &Stats{}
	}
	return &Receiver{cfg: cfg, sink: sink, log: log, stats: stats}
}

// Run listens on both addresses and serves until ctx is cancelled, then
// stops accepting and waits for requests in flight.
func (r *Receiver) Run(ctx context.Context) error {
	gl, err := net.Listen("tcp", r.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("otlp grpc listen %s: %w", r.cfg.GRPCAddr, err)
	}
	hl, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("otlp http listen %s: %w", r.cfg.HTTPAddr, err)
	}
	return r.Serve(ctx, gl, hl)
}

// Serve is Run on listeners the caller opened; it owns them (they are
// closed when it returns).
func (r *Receiver) Serve(ctx context.Context, gl, hl net.Listener) error {
	// A panic in a handler is answered as an internal error, logged and
	// counted (drover_collector_panics_total{server="otlp"}).
	onPanic := recovery.Logged(r.log, func(string) {
		if r.stats.Panics != nil {
			r.stats.Panics.WithLabelValues("otlp").Inc()
		}
	})
	opts := append(recovery.GRPC(onPanic), grpc.MaxRecvMsgSize(r.cfg.MaxRequestBytes), grpc.ForceServerCodecV2(newRawCodec()),
		grpc.ConnectionTimeout(r.cfg.ReadHeaderTimeout))
	if r.cfg.IdleTimeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: r.cfg.IdleTimeout}))
	}
	if r.cfg.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(r.cfg.MaxConcurrentStreams))
	}
	if r.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(r.cfg.TLS)))
	}
	gs := grpc.NewServer(append(opts, r.cfg.GRPCOptions...)...)
	r.registerGRPC(gs)
	mux := http.NewServeMux()
	var routes []string
	for name, info := range gs.GetServiceInfo() {
		for _, m := range info.Methods {
			routes = append(routes, "/"+name+"/"+m.Name)
		}
	}
	for _, rt := range httpRoutes {
		kind := rt.kind
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, req *http.Request) { r.serveHTTP(w, req, kind) })
		routes = append(routes, rt.pattern)
	}
	slices.Sort(routes)
	r.mu.Lock()
	r.routes = routes
	r.mu.Unlock()
	var h http.Handler = mux
	if r.cfg.HTTPWrap != nil {
		h = r.cfg.HTTPWrap(h)
	}
	hs := &http.Server{Handler: recovery.HTTP(h, onPanic, nil), ReadHeaderTimeout: r.cfg.ReadHeaderTimeout,
		ReadTimeout: r.cfg.ReadTimeout, IdleTimeout: r.cfg.IdleTimeout,
		// Refused handshakes (no or a bad client certificate) would
		// otherwise go to the standard logger, one line each.
		ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelDebug)}

	r.log.Info("OTLP receivers listening", "grpc", gl.Addr().String(), "http", hl.Addr().String(), "tls", r.cfg.TLS != nil,
		"max_connections", r.cfg.MaxConnections)
	if r.cfg.MaxConnections > 0 {
		gl, hl = netutil.LimitListener(gl, r.cfg.MaxConnections), netutil.LimitListener(hl, r.cfg.MaxConnections)
	}
	if r.cfg.TLS != nil {
		// The gRPC server does its own handshakes (its credentials).
		hl = tls.NewListener(hl, r.cfg.TLS)
	}
	return lifecycle.Serve(ctx, r.cfg.DrainTimeout, r.log,
		lifecycle.Listening{Name: "otlp grpc", Server: lifecycle.GRPC(gs), Listener: gl},
		lifecycle.Listening{Name: "otlp http", Server: lifecycle.HTTP(hs), Listener: hl})
}

// decodeMetrics converts an OTLP metrics request (protobuf) to rows
// without pdata when it can (ResourceCache.decodeMetrics): when every
// point passes the input rules. ok false: decode it with pdata.
func (r *Receiver) decodeMetrics(payload []byte) (rows *store.Batch, points int, ok bool) {
	rows = &store.Batch{}
	points, ok = r.cfg.Resources.decodeMetrics(payload, newEdge(r.cfg.Limits, time.Now()), rows)
	return rows, points, ok
}

func (r *Receiver) backpressure() error {
	st := status.New(codes.ResourceExhausted, ErrBackpressure.Error())
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.cfg.RetryAfter)}); err == nil {
		st = d
	}
	return st.Err()
}

// accept hands a decoded payload to the sink and maps its error for gRPC
// (asGRPC) or returns it as is. rec, if not nil, is the payload with room
// for the spool record header in front (see recordSink).
func (r *Receiver) accept(ctx context.Context, kind Kind, payload, rec []byte, points int, decoded any, asGRPC bool) error {
	r.stats.received(kind, points)
	var err error
	if rs, ok := r.sink.(recordSink); ok && rec != nil {
		err = rs.acceptRecord(ctx, kind, rec, points, decoded)
	} else {
		err = r.sink.Accept(ctx, kind, payload, points, decoded)
	}
	if err == nil {
		return nil
	}
	r.stats.rejected(kind, points)
	if !asGRPC {
		return err
	}
	switch {
	case errors.Is(err, ErrBackpressure):
		return r.backpressure()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

const (
	ctProtobuf = "application/x-protobuf"
	ctJSON     = "application/json"
)

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request, kind Kind) {
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if ct != ctProtobuf && ct != ctJSON {
		httpError(w, ct, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: want %s or %s", req.Header.Get("Content-Type"), ctProtobuf, ctJSON))
		return
	}
	body, status, err := r.readBody(w, req)
	if err != nil {
		httpError(w, ct, status, err.Error())
		return
	}
	var payload []byte
	var points int
	var decoded any
	var respBody func() ([]byte, error)
	empty := false // every point was rejected: nothing to spool
	switch kind {
	case KindMetrics:
		if ct == ctProtobuf {
			if rows, n, ok := r.decodeMetrics(body); ok {
				points, decoded, payload = n, rows, body
				respBody = pmetricotlp.NewExportResponse().MarshalProto
				break
			}
		}
		er := pmetricotlp.NewExportRequest()
		if ct == ctJSON {
			err = er.UnmarshalJSON(body)
		} else {
			err = er.UnmarshalProto(body)
		}
		if err != nil {
			httpError(w, ct, http.StatusBadRequest, "malformed OTLP metrics: "+err.Error())
			return
		}
		points = er.Metrics().DataPointCount()
		decoded = er.Metrics()
		payload = body
		resp := pmetricotlp.NewExportResponse()
		rejected, msg := r.screen(kind, decoded, points)
		if rejected > 0 {
			resp.PartialSuccess().SetRejectedDataPoints(int64(rejected))
			resp.PartialSuccess().SetErrorMessage(msg)
			points -= rejected
			empty = points == 0
		}
		if ct == ctJSON || rejected > 0 {
			if payload, err = er.MarshalProto(); err != nil {
				httpError(w, ct, http.StatusInternalServerError, err.Error())
				return
			}
		}
		respBody = func() ([]byte, error) {
			if ct == ctJSON {
				return resp.MarshalJSON()
			}
			return resp.MarshalProto()
		}
	case KindLogs:
		er := plogotlp.NewExportRequest()
		if ct == ctJSON {
			err = er.UnmarshalJSON(body)
		} else {
			err = er.UnmarshalProto(body)
		}
		if err != nil {
			httpError(w, ct, http.StatusBadRequest, "malformed OTLP logs: "+err.Error())
			return
		}
		points = er.Logs().LogRecordCount()
		decoded = er.Logs()
		payload = body
		resp := plogotlp.NewExportResponse()
		rejected, msg := r.screen(kind, decoded, points)
		if rejected > 0 {
			resp.PartialSuccess().SetRejectedLogRecords(int64(rejected))
			resp.PartialSuccess().SetErrorMessage(msg)
			points -= rejected
			empty = points == 0
		}
		if ct == ctJSON || rejected > 0 {
			if payload, err = er.MarshalProto(); err != nil {
				httpError(w, ct, http.StatusInternalServerError, err.Error())
				return
			}
		}
		respBody = func() ([]byte, error) {
			if ct == ctJSON {
				return resp.MarshalJSON()
			}
			return resp.MarshalProto()
		}
	}
	if empty {
		// Nothing left to store; the answer says why.
	} else if err := r.accept(req.Context(), kind, payload, nil, points, decoded, false); err != nil {
		if errors.Is(err, ErrBackpressure) {
			w.Header().Set("Retry-After", strconv.Itoa(int(r.cfg.RetryAfter.Seconds()+0.5)))
			httpError(w, ct, http.StatusTooManyRequests, err.Error())
			return
		}
		httpError(w, ct, http.StatusServiceUnavailable, err.Error())
		return
	}
	b, err := respBody()
	if err != nil {
		httpError(w, ct, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// readBody reads the (possibly gzip-compressed) body up to the limit.
func (r *Receiver) readBody(w http.ResponseWriter, req *http.Request) ([]byte, int, error) {
	limit := int64(r.cfg.MaxRequestBytes)
	if req.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes exceeds the %d byte limit", req.ContentLength, limit)
	}
	var src io.Reader = http.MaxBytesReader(w, req.Body, limit)
	switch req.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		src = io.LimitReader(zr, limit+1)
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Encoding %q: want gzip or none", req.Header.Get("Content-Encoding"))
	}
	body, err := io.ReadAll(src)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body exceeds the %d byte limit", limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed body exceeds the %d byte limit", limit)
	}
	return body, 0, nil
}

// httpError answers with an OTLP Status message in the request's encoding.
func httpError(w http.ResponseWriter, ct string, code int, msg string) {
	st := status.New(httpToGRPC(code), msg).Proto()
	var b []byte
	if ct == ctProtobuf {
		b, _ = protoMarshal(st)
		w.Header().Set("Content-Type", ctProtobuf)
	} else {
		b, _ = protoJSON(st)
		w.Header().Set("Content-Type", ctJSON)
	}
	w.WriteHeader(code)
	w.Write(b)
}

func httpToGRPC(code int) codes.Code {
	switch code {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Internal
}
