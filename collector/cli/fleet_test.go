package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWaitRedrawsOnATerminal: on a terminal --wait redraws one line in
// place and ends it with a newline before the result.
func TestWaitRedrawsOnATerminal(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.WriteString(w, `{"model":"iris","revision":3,"serving":1,"change":"rollback"}`)
			return
		}
		state := "pending"
		if polls.Add(1) >= 3 {
			state = "converged"
		}
		fmt.Fprintf(w, `{"model":"iris","desired":{"model":"iris","revision":3},"agents":[{"agent":"a1","host":"web-1","selected":true,"state":%q,"revision":3}],"progress":{}}`, state)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	a := &App{Opts: Options{Collector: srv.URL}, Getenv: func(string) string { return "" }, Out: &out, Err: &errb,
		IsTerminal: func(w io.Writer) bool { return w == io.Writer(&errb) }, PollInterval: time.Millisecond}
	defer a.Close()
	if err := a.Rollback(context.Background(), "iris", "", ChangeFlags{Wait: true, Timeout: 10 * time.Second}); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	e := errb.String()
	if strings.Count(e, "\r\x1b[K") < 3 || !strings.HasSuffix(e, "\n") || strings.Count(e, "\n") != 1 {
		t.Errorf("want one line redrawn in place, ended by a newline:\n%q", e)
	}
	if !strings.Contains(out.String(), "iris revision 3: all 1 selected agents converged") {
		t.Errorf("stdout:\n%s", out.String())
	}
}
