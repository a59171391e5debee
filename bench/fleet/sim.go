package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-ml/drover/collector/fleet"
)

// simAgent speaks the agent side of the control channel (docs/fleet.md,
// "Control channel") for one model: register, PUT its inventory on every
// change and every heartbeat interval, long-poll its desired state with
// If-None-Match. It "applies" a desired version by reporting it serving
// in the next inventory, after applyDelay (0: at once).
type simAgent struct {
	id, host   string
	base       string // collector admin URL
	token      string
	model      string
	hc         *http.Client
	applyDelay time.Duration
	counters   *simCounters

	mu       sync.Mutex
	serving  uint64
	revision uint64
	changed  chan struct{} // buffered 1: the inventory changed
	// accepted is when the collector first answered 204 to an inventory
	// at acceptedRev (under mu).
	accepted    time.Time
	acceptedRev uint64
}

// acceptedAt returns when the collector accepted the agent's first
// inventory at revision rev or later; zero if not yet.
func (a *simAgent) acceptedAt(rev uint64) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acceptedRev < rev {
		return time.Time{}
	}
	return a.accepted
}

// simCounters are the simulated fleet's request counts and errors.
type simCounters struct {
	registers, inventories, polls200, polls304, errors atomic.Int64
	lastErr                                            atomic.Value // string
}

func (c *simCounters) fail(err error) {
	c.errors.Add(1)
	c.lastErr.Store(err.Error())
}

// run registers and then reports and polls until ctx is done; it
// returns at once.
// At most cap(starting) agents register at once (a fleet's agents start
// at different times; every registration is a write to ClickHouse).
func (a *simAgent) run(ctx context.Context, wg *sync.WaitGroup, starting chan struct{}) {
	a.changed = make(chan struct{}, 1)
	wg.Go(func() {
		starting <- struct{}{}
		interval := a.register(ctx)
		<-starting
		wg.Go(func() { a.poll(ctx) })
		a.report(ctx, interval)
	})
}

func (a *simAgent) register(ctx context.Context) time.Duration {
	for ctx.Err() == nil {
		var reg fleet.Registered
		code, err := a.do(ctx, http.MethodPost, "/v1/agents/register", "", fleet.Registration{Agent: a.id, Host: a.host,
			Labels: map[string]string{"sim": "true"}, Build: "bench/fleet"}, &reg, nil)
		if err == nil && code == http.StatusOK {
			a.counters.registers.Add(1)
			d, err := time.ParseDuration(reg.HeartbeatInterval)
			if err != nil || d <= 0 {
				d = 10 * time.Second
			}
			return d
		}
		if err == nil {
			err = fmt.Errorf("register %s: status %d", a.id, code)
		}
		a.counters.fail(err)
		sleep(ctx, time.Second)
	}
	return 10 * time.Second
}

// report PUTs the inventory at each change and each heartbeat interval
// (the first after a random part of it, so heartbeats spread as a real
// fleet's do).
func (a *simAgent) report(ctx context.Context, interval time.Duration) {
	tick := time.NewTimer(rand.N(interval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.changed:
		case <-tick.C:
		}
		tick.Reset(interval)
		a.mu.Lock()
		rev := a.revision
		inv := fleet.Inventory{Host: a.host, Labels: map[string]string{"sim": "true"}, Revision: map[string]uint64{a.model: a.revision},
			Models: []fleet.ModelInventory{{Model: a.model, Serving: a.serving, Versions: []fleet.VersionInventory{}}}}
		if a.serving != 0 {
			inv.Models[0].Versions = append(inv.Models[0].Versions, fleet.VersionInventory{Version: a.serving, State: "serving"})
		}
		a.mu.Unlock()
		code, err := a.do(ctx, http.MethodPut, "/v1/agents/"+a.id+"/inventory", "", inv, nil, nil)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.counters.fail(err)
		case code == http.StatusNotFound:
			a.register(ctx)
			a.kick()
		case code != http.StatusNoContent:
			a.counters.fail(fmt.Errorf("inventory %s: status %d", a.id, code))
		default:
			a.counters.inventories.Add(1)
			a.mu.Lock()
			if rev > a.acceptedRev {
				a.accepted, a.acceptedRev = time.Now(), rev
			}
			a.mu.Unlock()
		}
	}
}

func (a *simAgent) kick() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// poll long-polls the desired state and applies each change.
func (a *simAgent) poll(ctx context.Context) {
	etag := ""
	for ctx.Err() == nil {
		var d fleet.AgentDesired
		var hdr http.Header
		code, err := a.do(ctx, http.MethodGet, "/v1/agents/"+a.id+"/desired?wait=30s", etag, nil, &d, &hdr)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.counters.fail(err)
			sleep(ctx, time.Second)
		case code == http.StatusNotModified:
			a.counters.polls304.Add(1)
		case code == http.StatusOK:
			a.counters.polls200.Add(1)
			etag = hdr.Get("ETag")
			st, ok := d.Models[a.model]
			if !ok {
				continue
			}
			if a.applyDelay > 0 {
				sleep(ctx, rand.N(a.applyDelay))
			}
			a.mu.Lock()
			a.serving, a.revision = st.Serving, st.Revision
			a.mu.Unlock()
			a.kick()
		default: // 404 (forgotten: the reporter registers again), 503 (not loaded)
			a.counters.fail(fmt.Errorf("desired %s: status %d", a.id, code))
			sleep(ctx, time.Second)
		}
	}
}

// do sends one request with a JSON body (when in is not nil) and decodes
// a 200 answer into out.
func (a *simAgent) do(ctx context.Context, method, path, etag string, in, out any, hdr *http.Header) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
		if hdr != nil {
			*hdr = resp.Header
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
