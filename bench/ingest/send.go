package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const exportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// rawCodec sends pre-encoded protobuf bytes as they are and keeps the
// response bytes, so the sender never builds or encodes a message.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Sender replays a Workload over OTLP/gRPC.
type Sender struct {
	conn *grpc.ClientConn
	w    *Workload

	Points   atomic.Int64 // acknowledged points
	Rejected atomic.Int64 // points the server reported as rejected (partial success)
	Retries  atomic.Int64 // requests sent again after a retryable error
	Round    atomic.Int64 // Paced: the round being sent
}

// NewSender dials addr; the connection is lazy. token, if not empty, is
// sent as a bearer token with every request; with t, over TLS verified
// with t's CA.
func NewSender(addr, token string, w *Workload, t *tlsFiles) (*Sender, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if t != nil {
		creds, err := credentials.NewClientTLSFromFile(t.ca, "")
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(addr, append(opts,
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(16<<20)))...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &Sender{conn: conn, w: w}, nil
}

// Close closes the connection.
func (s *Sender) Close() error { return s.conn.Close() }

// send delivers request i of round r, retrying retryable errors until ctx
// is done; it returns only once the server acknowledged it.
func (s *Sender) send(ctx context.Context, buf *[]byte, i, r int) error {
	*buf = s.w.Fill(*buf, i, r)
	var resp []byte
	backoff := 50 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.conn.Invoke(cctx, exportMethod, buf, &resp)
		cancel()
		if err == nil {
			break
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		default:
			return fmt.Errorf("export request %d round %d: %w", i, r, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.Retries.Add(1)
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
	n := int64(s.w.PointsPerReq[i])
	if len(resp) > 0 {
		er := pmetricotlp.NewExportResponse()
		if err := er.UnmarshalProto(resp); err == nil {
			if rej := er.PartialSuccess().RejectedDataPoints(); rej > 0 {
				s.Rejected.Add(rej)
				n -= rej
			}
		}
	}
	s.Points.Add(n)
	return nil
}

// Burst sends rounds [firstRound, firstRound+rounds) as fast as the server
// acknowledges, with conc concurrent senders.
func (s *Sender) Burst(ctx context.Context, firstRound, rounds, conc int) error {
	per := len(s.w.Requests)
	total := rounds * per
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= total || ctx.Err() != nil {
					return
				}
				if err := s.send(ctx, &buf, k%per, firstRound+k/per); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Paced sends one round per interval, starting at firstRound, until ctx is
// done, and returns the number of rounds it started and completed. Requests
// within a round go out back to back on conc senders.
func (s *Sender) Paced(ctx context.Context, firstRound int, interval time.Duration, conc int) (int, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	r := firstRound
	for {
		s.Round.Store(int64(r))
		// A round in flight is finished even after ctx is done, so that
		// rounds are whole; its own retries use a fresh context.
		if err := s.Burst(context.WithoutCancel(ctx), r, 1, conc); err != nil {
			return r - firstRound, err
		}
		r++
		select {
		case <-ctx.Done():
			return r - firstRound, nil
		case <-tick.C:
		}
	}
}

// Rate sends rounds [0, rounds), round r starting at r·interval (its
// requests back to back on conc senders), and returns how many rounds
// started late because the previous one was still being acknowledged.
func (s *Sender) Rate(ctx context.Context, rounds int, interval time.Duration, conc int) (late int, err error) {
	start := time.Now()
	for r := range rounds {
		due := start.Add(time.Duration(r) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return late, ctx.Err()
			case <-time.After(d):
			}
		} else if r > 0 && -d > interval/10 {
			late++
		}
		s.Round.Store(int64(r))
		if err := s.Burst(ctx, r, 1, conc); err != nil {
			return late, err
		}
	}
	return late, nil
}

// bearer is a token sent as "authorization: Bearer <token>" on each call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
