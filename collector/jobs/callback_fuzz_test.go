package jobs

import (
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzCallbackBody: a correctly signed callback body of any content is
// refused as ErrBadCallback or ErrStale, or delivered to the waiting
// attempt with a final state and that attempt, without panicking. The
// attempt waits here, so ClickHouse is never reached (fakeConn).
func FuzzCallbackBody(f *testing.F) {
	f.Add([]byte(`{"attempt":1,"state":"succeeded","result_version":3}`))
	f.Add([]byte(`{"attempt":1,"state":"failed","error":"oom"}`))
	f.Add([]byte(`{"attempt":2,"state":"succeeded"}`))
	f.Add([]byte(`{"attempt":-1,"state":"running"}`))
	f.Add([]byte(`{"attempt":1e99,"state":"succeeded","result_version":"x"}`))
	f.Add([]byte(`[`))
	cfg := DefaultConfig()
	cfg.Executor, cfg.ModelStore = ExecutorWebhook, f.TempDir()
	cfg.Webhook.URL, cfg.Webhook.CallbackURL, cfg.Webhook.Secret = "http://127.0.0.1:1/run", "http://127.0.0.1:1", "fuzz-secret"
	if cfg.Webhook.Timeout <= 0 {
		cfg.Webhook.Timeout = time.Minute
	}
	m, err := New(Options{Conn: fakeConn{}, Node: "n", Config: cfg})
	if err != nil {
		f.Fatal(err)
	}
	secret := []byte("fuzz-secret")
	at := time.Unix(1_800_000_000, 0)
	m.secret, m.now = secret, func() time.Time { return at }
	w := &waiter{attempt: 1, ch: make(chan CallbackRequest, 1)}
	m.waiters["j"] = w
	f.Fuzz(func(t *testing.T, body []byte) {
		err := m.Callback(context.Background(), "j", body, Sign(secret, "j", at, body))
		select {
		case r := <-w.ch:
			if err != nil {
				t.Fatalf("delivered and refused (%v)", err)
			}
			if r.Attempt != 1 || (r.State != StateSucceeded && r.State != StateFailed) {
				t.Fatalf("delivered %+v", r)
			}
		default:
			if err == nil {
				t.Fatal("accepted but not delivered")
			}
			if !errors.Is(err, ErrBadCallback) && !errors.Is(err, ErrStale) {
				t.Fatalf("unexpected error class: %v", err)
			}
		}
	})
}
