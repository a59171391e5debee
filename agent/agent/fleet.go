package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/drover-ml/drover/agent/fleet"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/buildinfo"
	"github.com/drover-ml/drover/shared/tokens"
)

// newFleet builds the fleet control client from the control section: the
// collectors, the agent's token (read from control.token_file), the labels
// and the heartbeat interval.
//
// The registration answer's OTLP endpoint is logged, not yet used: the
// exporter keeps telemetry.endpoint (set it to the collector's OTLP
// address, with the same token, in telemetry.headers).
func newFleet(cfg Config, host string, set *versions.Set, log *slog.Logger) (*fleet.Client, error) {
	c := cfg.File.Control
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("control.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if _, err := tokens.ParseBearer("Bearer " + tok); err != nil {
		return nil, fmt.Errorf("control.token_file %s: not a token (1 to %d visible ASCII characters)", c.TokenFile, tokens.MaxLen)
	}
	tc, err := c.CollectorTLS.Config(func(err error) { log.Warn("control.collector_tls: reload the client certificate", "err", err) })
	if err != nil {
		return nil, fmt.Errorf("control.collector_tls: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return fleet.New(fleet.Config{
		HTTPClient: &http.Client{Transport: tr},
		Collectors: c.Collectors, Token: tok, Labels: c.Labels, Host: host, Build: buildinfo.Version,
		HeartbeatInterval: c.HeartbeatInterval, DataDir: cfg.DataDir, ModelDir: cfg.ModelDir,
		Versions: set, Logger: log,
	})
}
