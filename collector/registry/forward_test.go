package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ownerSwitch is a ring stand-in: the admin address of the model's owner,
// changed by the test; self names this collector's own address.
type ownerSwitch struct {
	mu    sync.Mutex
	owner string
	asked int
}

func (o *ownerSwitch) set(addr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owner = addr
}

func (o *ownerSwitch) questions() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.asked
}

func (o *ownerSwitch) func_(self string) OwnerFunc {
	return func(string) (bool, string, bool) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.asked++
		if o.owner == self {
			return true, "", false
		}
		return false, o.owner, o.owner != ""
	}
}

// TestForwarderCommitsOnTheOwner: a commit received by a collector that
// does not own the model runs on the owner (over its PatternCommit route,
// with the caller's credential); an owner that has died, or that says it
// is not the owner, is retried until the ring names one that answers; the
// owner's refusal of bad input comes back at once with its status.
func TestForwarderCommitsOnTheOwner(t *testing.T) {
	f := newFixture(t)
	quiet := slog.New(slog.DiscardHandler)
	// Two collectors on one database and one store: "a" and "b".
	regA := f.reg
	regB := New(f.db.Conn, f.blobs, Options{Database: f.db.Name, Logger: quiet})
	ring := &ownerSwitch{}
	var creds []string
	var credMu sync.Mutex
	serve := func(reg *Registry, name string) (*httptest.Server, *Forwarder) {
		var fw *Forwarder
		srv := httptest.NewUnstartedServer(nil)
		fw = NewForwarder(reg, ForwardOptions{Node: name, Owner: ring.func_(srv.Listener.Addr().String()), Wait: 10 * time.Second, Retry: 20 * time.Millisecond, Logger: quiet})
		h := http.NewServeMux()
		h.Handle(PatternCommit, reg.Routes(fw.Commit)[PatternCommit])
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			credMu.Lock()
			creds = append(creds, r.Header.Get("Authorization")+" from "+r.Header.Get(HeaderForwardedBy))
			credMu.Unlock()
			h.ServeHTTP(w, r)
		})
		srv.Start()
		t.Cleanup(srv.Close)
		return srv, fw
	}
	srvA, _ := serve(regA, "a")
	srvB, fwB := serve(regB, "b")
	addrA, addrB := srvA.Listener.Addr().String(), srvB.Listener.Addr().String()
	ctx := withCredential(context.Background(), "Bearer drover_test")

	stage := func(seed float32) Commit {
		fi, err := regB.Stage(ctx, upload("model.onnx", linear(t, seed)))
		if err != nil {
			t.Fatal(err)
		}
		return Commit{Model: "fw", Files: []FileInfo{fi}}
	}

	// b receives, a owns: the commit runs on a.
	ring.set(addrA)
	v, created, err := fwB.Commit(ctx, stage(1))
	if err != nil || !created || v.Version != 1 {
		t.Fatalf("forwarded commit = %+v, %v, %v; want version 1 created", v, created, err)
	}
	credMu.Lock()
	seen := append([]string(nil), creds...)
	credMu.Unlock()
	if len(seen) != 1 || seen[0] != "Bearer drover_test from b" {
		t.Errorf("the owner saw %q; want the caller's credential, forwarded by b", seen)
	}

	// a dies; the ring names b once a has been declared dead.
	srvA.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		ring.set(addrB)
	}()
	c2 := stage(2)
	v, created, err = fwB.Commit(ctx, c2)
	if err != nil || !created || v.Version != 2 {
		t.Fatalf("commit while the owner died = %+v, %v, %v; want version 2 created", v, created, err)
	}
	// The same content again (as a retry after a lost answer would be):
	// the existing version, not a new number.
	if v, created, err = fwB.Commit(ctx, c2); err != nil || created || v.Version != 2 {
		t.Errorf("repeated commit = %+v, %v, %v; want version 2, created false", v, created, err)
	}

	// A collector that is asked but is not the owner in its own view
	// answers 503, and the forwarder asks again.
	srvC, fwC := serve(New(f.db.Conn, f.blobs, Options{Database: f.db.Name, Logger: quiet}), "c")
	ring.set("127.0.0.1:1") // nobody listens: refused, retried
	go func() {
		time.Sleep(100 * time.Millisecond)
		ring.set(addrB)
	}()
	if v, _, err = fwC.Commit(ctx, stage(3)); err != nil || v.Version != 3 {
		t.Fatalf("commit after a refused owner = %+v, %v; want version 3", v, err)
	}
	// A forwarded commit that reaches a non-owner is refused, not
	// forwarded again.
	req, _ := http.NewRequest("POST", srvC.URL+"/v1/models/fw/commit", strings.NewReader(`{"model":"fw","files":[]}`))
	req.Header.Set(HeaderForwardedBy, "x")
	resp, err := http.DefaultClient.Do(req) // c is not the owner (b is)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not the owner") {
		t.Errorf("forwarded commit on a non-owner: %d %s; want 503 not the owner", resp.StatusCode, body)
	}

	// Bad input is the owner's final answer: 400 comes back, no retry.
	before := ring.questions()
	bad := Commit{Model: "fw", Files: []FileInfo{{Path: "weights.bin", SHA256: strings.Repeat("ab", 32), Size: 1}}}
	_, _, err = fwC.Commit(ctx, bad)
	if err == nil || status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "no model.onnx") {
		t.Errorf("bad commit = %v (status %d); want the owner's 400", err, status(err))
	}
	if asked := ring.questions() - before; asked != 2 {
		t.Errorf("a bad commit asked the ring %d times; want 2 (the forwarder once, the owner once: no retry)", asked)
	}

	// No owner at all within Wait: an error that says so, and no version.
	ring.set("")
	short := NewForwarder(regB, ForwardOptions{Node: "b", Owner: ring.func_(addrB), Wait: 200 * time.Millisecond, Retry: 20 * time.Millisecond, Logger: quiet})
	if _, _, err := short.Commit(ctx, stage(4)); err == nil || !strings.Contains(err.Error(), "no owner answered") || status(err) != http.StatusServiceUnavailable {
		t.Errorf("commit without an owner = %v; want 503 no owner answered", err)
	}
	if n := f.records(t); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
}
