package agent

import (
	"context"
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
// and the heartbeat interval. Each registration answer goes to
// onRegister.
func newFleet(cfg Config, host string, set *versions.Set, onRegister func(fleet.Registration), log *slog.Logger) (*fleet.Client, error) {
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
		Versions: set, OnRegister: onRegister, Logger: log,
	})
}

// followOTLP points the telemetry at the OTLP endpoint of a registration
// answer (telemetry.Telemetry.FollowCollector decides whether it applies).
func (a *agent) followOTLP(r fleet.Registration) {
	if _, err := a.tel.FollowCollector(context.Background(), r.OTLP.GRPC, r.OTLP.HTTP); err != nil {
		a.log.Warn("telemetry: keeping the OTLP endpoint; the collector's does not fit", "collector", r.Collector, "err", err)
	}
}
