package deploytest

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"

	agentconfig "github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/collector/server"
)

// parseAgentConfig decodes an agent.yaml the files mount with the agent's
// own strict parser (unknown fields are errors) and validates it. The
// telemetry's TLS section is decoded but left out of the validation, which
// reads its files: they exist only inside the containers.
func parseAgentConfig(t testing.TB, where string, b []byte) agentconfig.Config {
	t.Helper()
	// agentconfig.Parse, without its validation.
	cfg := agentconfig.Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%s: the agent refuses it: %v", where, err)
	}
	check := cfg
	check.Telemetry.TLS, check.Telemetry.Insecure = nil, nil
	if err := check.Validate(); err != nil {
		t.Fatalf("%s: the agent refuses it: %v", where, err)
	}
	return cfg
}

// parseCollectorConfig decodes a collector.yaml the files mount with the
// collector's own strict parser (unknown fields are errors, in every
// section). It does not run Validate, which reads the files the config
// names: they exist only inside the containers.
func parseCollectorConfig(t testing.TB, where string, b []byte) server.Config {
	t.Helper()
	cfg, err := server.Parse(b)
	if err != nil {
		t.Fatalf("%s: the collector refuses it: %v", where, err)
	}
	if err := cfg.Registry.Validate(); err != nil {
		t.Fatalf("%s: registry: %v", where, err)
	}
	return cfg
}
