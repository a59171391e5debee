package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// ErrStoppedEarly is the error of a component whose run function returned
// nil before the Group told it to stop: a component runs until it is
// stopped, so returning on its own is a failure too.
var ErrStoppedEarly = errors.New("stopped before it was told to")

// Group runs components as one and stops them in order. Each component is
// a name and a run function with the lifecycle contract (it runs until its
// ctx is cancelled, then drains and returns).
//
// Run starts every component at once. It then waits until its ctx is done
// or any component returns, and stops the rest one at a time in the REVERSE
// order of Add: the component added last is stopped first, and the next one
// is told to stop only once the previous one has returned. So a component
// is added after everything it depends on: receivers after the writer they
// feed, the writer after the database it writes to.
//
// A component that returns before it is told to stop (with an error, or nil:
// ErrStoppedEarly) stops the whole group, and Run returns its error. A
// Group is not safe for concurrent use: Add every component, then call Run
// once.
type Group struct {
	// Log, if set, gets a line when a component fails or the group stops.
	Log *slog.Logger
	// OnStop, if set, is called (from Run's goroutine) just before a
	// component is told to stop, and OnReturn whenever a component's run
	// function has returned (from that component's goroutine, err as it
	// returned it). They are for tests and diagnostics; they must be quick.
	OnStop   func(name string)
	OnReturn func(name string, err error)

	members []member
	ran     bool
}

type member struct {
	name string
	run  func(ctx context.Context) error
}

// Add adds a component. It is started by Run and stopped before every
// component added earlier.
func (g *Group) Add(name string, run func(ctx context.Context) error) {
	g.members = append(g.members, member{name: name, run: run})
}

type result struct {
	i   int
	err error
}

// Run runs every component until ctx is done or one of them returns, then
// stops the others in reverse order of Add, each after the previous one
// returned. It returns when every component has returned: nil when ctx
// ended the group and every component stopped cleanly; otherwise the error
// of the component that ended the group first, joined with the errors the
// others returned while stopping, each prefixed with its component's name.
// The components' contexts carry ctx's values but not its cancellation:
// only the Group cancels them.
func (g *Group) Run(ctx context.Context) error {
	if g.ran {
		return errors.New("lifecycle: Group.Run called twice")
	}
	g.ran = true
	log := g.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := context.WithoutCancel(ctx)
	cancels := make([]context.CancelFunc, len(g.members))
	returned := make([]chan struct{}, len(g.members))
	errs := make([]error, len(g.members))
	results := make(chan result, len(g.members))
	var wg sync.WaitGroup
	for i, m := range g.members {
		mctx, cancel := context.WithCancel(base)
		cancels[i], returned[i] = cancel, make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := m.run(mctx)
			if g.OnReturn != nil {
				g.OnReturn(m.name, err)
			}
			errs[i] = err
			close(returned[i])
			results <- result{i: i, err: err}
		}()
	}
	defer wg.Wait()
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()

	var first error
	cause := -1
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx))
	case r := <-results:
		cause = r.i
		err := r.err
		if err == nil {
			err = ErrStoppedEarly
		}
		first = fmt.Errorf("%s: %w", g.members[r.i].name, err)
		log.Error("component stopped; stopping the others", "stopped", g.members[r.i].name, "err", err)
	}
	for i := len(g.members) - 1; i >= 0; i-- {
		select {
		case <-returned[i]:
			continue // it returned on its own: the cause, or a later failure
		default:
		}
		if g.OnStop != nil {
			g.OnStop(g.members[i].name)
		}
		cancels[i]()
		<-returned[i]
	}
	all := []error{first}
	for i, m := range g.members {
		if errs[i] != nil && i != cause {
			all = append(all, fmt.Errorf("%s: %w", m.name, errs[i]))
		}
	}
	return errors.Join(all...)
}
