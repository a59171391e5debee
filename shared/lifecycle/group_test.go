package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what the components of a test group did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// waiter is a component that runs until stopped and then records that it
// stopped, returning err.
func waiter(j *journal, name string, err error) func(context.Context) error {
	return func(ctx context.Context) error {
		j.add("start " + name)
		<-ctx.Done()
		j.add("stopped " + name)
		return err
	}
}

// started waits until every name has recorded its start.
func started(t *testing.T, j *journal, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := j.get()
		all := true
		for _, n := range names {
			all = all && slices.Contains(ev, "start "+n)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all of %v started: %v", names, ev)
		}
		time.Sleep(time.Millisecond)
	}
}

func stops(events []string) []string {
	var out []string
	for _, e := range events {
		if n, ok := strings.CutPrefix(e, "stopped "); ok {
			out = append(out, n)
		}
	}
	return out
}

func TestGroupStopsInReverseOrder(t *testing.T) {
	j := &journal{}
	var told []string
	g := &Group{OnStop: func(name string) { told = append(told, name) }}
	for _, n := range []string{"database", "writer", "receivers"} {
		g.Add(n, waiter(j, n, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	started(t, j, "database", "writer", "receivers")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	want := []string{"receivers", "writer", "database"}
	if got := stops(j.get()); !slices.Equal(got, want) {
		t.Errorf("stopped in order %v, want %v", got, want)
	}
	if !slices.Equal(told, want) {
		t.Errorf("OnStop saw %v, want %v", told, want)
	}
}

func TestGroupFailureStopsTheRest(t *testing.T) {
	j := &journal{}
	boom := errors.New("spool write failed")
	fail := make(chan struct{})
	g := &Group{}
	g.Add("database", waiter(j, "database", nil))
	g.Add("writer", func(ctx context.Context) error {
		j.add("start writer")
		<-fail
		j.add("stopped writer")
		return boom
	})
	g.Add("receivers", waiter(j, "receivers", nil))
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	started(t, j, "database", "writer", "receivers")
	close(fail)
	err := <-done
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "writer: ") {
		t.Fatalf("Run = %v, want the writer's error prefixed with its name", err)
	}
	want := []string{"writer", "receivers", "database"}
	if got := stops(j.get()); !slices.Equal(got, want) {
		t.Errorf("stopped in order %v, want %v", got, want)
	}
}

func TestGroupEarlyNilIsAnError(t *testing.T) {
	j := &journal{}
	g := &Group{}
	g.Add("admin", waiter(j, "admin", nil))
	g.Add("ring", func(ctx context.Context) error { return nil })
	err := g.Run(context.Background())
	if !errors.Is(err, ErrStoppedEarly) || !strings.Contains(err.Error(), "ring") {
		t.Fatalf("Run = %v, want ring: ErrStoppedEarly", err)
	}
	if got := stops(j.get()); !slices.Equal(got, []string{"admin"}) {
		t.Errorf("stopped %v, want [admin]", got)
	}
}

func TestGroupJoinsStopErrors(t *testing.T) {
	j := &journal{}
	drain := errors.New("drain incomplete")
	g := &Group{}
	g.Add("database", waiter(j, "database", nil))
	g.Add("writer", waiter(j, "writer", drain))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	started(t, j, "database", "writer")
	cancel()
	err := <-done
	if !errors.Is(err, drain) || err.Error() != "writer: drain incomplete" {
		t.Fatalf("Run = %v, want writer: drain incomplete", err)
	}
}

func TestGroupAlreadyCancelled(t *testing.T) {
	j := &journal{}
	g := &Group{}
	g.Add("a", waiter(j, "a", nil))
	g.Add("b", waiter(j, "b", nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := stops(j.get()); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("stopped %v, want [b a]", got)
	}
	if err := g.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

type key struct{}

func TestGroupPassesValuesNotCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	got := make(chan any, 1)
	returned := make(chan string, 2)
	g := &Group{OnReturn: func(name string, err error) { returned <- name }}
	g.Add("first", func(c context.Context) error {
		<-c.Done()
		return nil
	})
	g.Add("second", func(c context.Context) error {
		got <- c.Value(key{})
		<-c.Done()
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	if v := <-got; v != "v" {
		t.Errorf("value %v, want v", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a, b := <-returned, <-returned; a != "second" || b != "first" {
		t.Errorf("OnReturn saw %s, %s; want second, first", a, b)
	}
}
