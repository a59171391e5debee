package deploytest

import (
	"testing"

	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/auth"
)

// healthRoutes says, per binary, which of its address flags serves health
// checks and whether a GET of path there is an open route of its table.
var healthRoutes = map[string]struct {
	flag string
	open func(path string) bool
}{
	"drover-agent": {flag: "http-addr", open: func(path string) bool {
		return serve.PublicRoutes["GET "+path] == serve.Open
	}},
	"drover-collector": {flag: "admin-addr", open: func(path string) bool {
		a, ok := admin.Routes()["GET "+path]
		return ok && a == auth.Public
	}},
}

// checkHealth fails unless a GET of path on port is an open route of the
// binary's route table, on the listener that serves it.
func checkHealth(t testing.TB, where string, in invocation, port int, path string) {
	t.Helper()
	h, ok := healthRoutes[in.bin.name]
	if !ok {
		t.Fatalf("%s: no health route table for %s", where, in.bin.name)
	}
	if want := in.port(t, where, h.flag); port != want {
		t.Errorf("%s: health check on port %d, but %s serves its health routes on --%s (port %d)", where, port, in.bin.name, h.flag, want)
	}
	if !h.open(path) {
		t.Errorf("%s: GET %s is not an open route of %s's route table", where, path, in.bin.name)
	}
}

// TestHealthRouteTables makes sure the tables the checks rely on hold the
// health routes, so that the other tests can fail.
func TestHealthRouteTables(t *testing.T) {
	for bin, paths := range map[string][]string{
		"drover-agent":     {"/v2/health/live", "/v2/health/ready"},
		"drover-collector": {"/healthz", "/readyz"},
	} {
		for _, p := range paths {
			if !healthRoutes[bin].open(p) {
				t.Errorf("%s: GET %s is not open", bin, p)
			}
		}
		if healthRoutes[bin].open("/v2/health/nope") || healthRoutes[bin].open("/nope") {
			t.Errorf("%s: a route that does not exist counts as open", bin)
		}
	}
	if healthRoutes["drover-collector"].open("/metrics") {
		t.Error("drover-collector: GET /metrics needs a reader token, yet counts as open")
	}
}
