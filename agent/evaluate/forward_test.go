package evaluate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// sink records what a ForwardQueue sends, failing the first fail calls.
type sink struct {
	mu    sync.Mutex
	fail  int
	perm  bool
	calls int
	got   map[string][]Feedback
}

func (s *sink) send(ctx context.Context, model string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail > 0 {
		s.fail--
		if s.perm {
			return fmt.Errorf("collector answered 400: %w", ErrPermanent)
		}
		return errors.New("connection refused")
	}
	fbs, err := ParseFeedback(body)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrPermanent)
	}
	if s.got == nil {
		s.got = map[string][]Feedback{}
	}
	s.got[model] = append(s.got[model], fbs...)
	return nil
}

func (s *sink) ids(model string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.got[model] {
		out = append(out, f.ID+"="+showValue(f.Label))
	}
	return out
}

func showValue(v any) string { return fmt.Sprint(v) }

func run(t *testing.T, q *ForwardQueue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// TestForwardQueueSendsInBatches: forwarded labels reach Send per model,
// in batches, in the feedback format, with their labels' types kept;
// a failing collector is retried.
func TestForwardQueueSendsInBatches(t *testing.T) {
	s := &sink{fail: 2}
	q := NewForwardQueue(ForwardOptions{Send: s.send, Batch: 3, Retry: time.Millisecond})
	run(t, q)
	fbs, err := ParseFeedback([]byte(`[{"id":"a","label":1},{"id":"b","label":"cat"},{"id":"c","label":true},{"id":"d","label":2.5},{"id":"e#1","label":0}]`))
	if err != nil {
		t.Fatal(err)
	}
	q.Forward("iris", fbs)
	q.Forward("house", fbs[3:4])
	want := []string{"a=1", "b=cat", "c=true", "d=2.5", "e#1=0"}
	testenv.Eventually(t, 10*time.Second, "every label forwarded", func() bool {
		return slices.Equal(s.ids("iris"), want) && slices.Equal(s.ids("house"), []string{"d=2.5"})
	})
	if st := q.Stats(); st.Forwarded != 6 || st.Dropped != 0 || st.Failed != 2 {
		t.Errorf("stats %+v, want 6 forwarded, 2 failed sends, none dropped", st)
	}
}

// TestForwardQueueBounds: labels beyond MaxQueue are dropped and counted;
// a batch the collector refuses for good is dropped, not retried.
func TestForwardQueueBounds(t *testing.T) {
	s := &sink{fail: 1, perm: true}
	q := NewForwardQueue(ForwardOptions{Send: s.send, MaxQueue: 2, Retry: time.Millisecond})
	fbs, _ := ParseFeedback([]byte(`[{"id":"a","label":1},{"id":"b","label":1},{"id":"c","label":1}]`))
	q.Forward("iris", fbs) // before Run: c does not fit
	if st := q.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v, want 1 dropped", st)
	}
	run(t, q)
	testenv.Eventually(t, 10*time.Second, "the refused batch dropped", func() bool { return q.Stats().Dropped == 3 })
	q.Forward("iris", fbs[2:])
	testenv.Eventually(t, 10*time.Second, "the next label forwarded", func() bool { return slices.Equal(s.ids("iris"), []string{"c=1"}) })
	s.mu.Lock()
	calls := s.calls
	s.mu.Unlock()
	if calls != 2 {
		t.Errorf("%d sends, want 2 (a refused batch is not retried)", calls)
	}
}
