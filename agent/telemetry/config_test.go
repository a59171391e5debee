package telemetry

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/shared/testenv"
)

// parse decodes a telemetry section as the agent's config does: over
// DefaultConfig, unknown fields rejected, then validated.
func parse(b []byte) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, err
	}
	return c, c.Validate()
}

func TestBadConfigs(t *testing.T) {
	testenv.BadConfigs(t, "testdata/*.bad.yaml", func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = parse(b)
		return err
	})
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.good.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parse(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEndpointFollowsProtocol: a section that picks http/protobuf and no
// endpoint gets the http port; an explicit endpoint is kept.
func TestEndpointFollowsProtocol(t *testing.T) {
	for doc, want := range map[string]string{
		"protocol: http/protobuf\n":                   DefaultEndpointHTTP,
		"protocol: grpc\n":                            DefaultEndpointGRPC,
		"protocol: http/protobuf\nendpoint: c:4317\n": "c:4317",
		"interval: 1s\n":                              DefaultEndpointGRPC,
	} {
		c, err := parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if c.Endpoint != want {
			t.Errorf("%q: endpoint %q, want %q", doc, c.Endpoint, want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want Config
	}{
		{"empty", "testdata/empty.good.yaml", Config{
			Endpoint: DefaultEndpointGRPC, Protocol: ProtocolGRPC, Interval: DefaultInterval,
			Timeout: DefaultTimeout, MaxQueue: DefaultMaxQueue, Temporality: TemporalityDelta,
		}},
		{"full", "testdata/full.good.yaml", Config{
			Endpoint: "collector.internal:4318", Protocol: ProtocolHTTP,
			Headers:  map[string]string{"Authorization": "Bearer abc"},
			Interval: 30 * time.Second, Timeout: 3 * time.Second, MaxQueue: 512,
			Temporality: TemporalityCumulative,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parse(b)
			if err != nil {
				t.Fatal(err)
			}
			// Complete as parsed: nothing is left for WithDefaults.
			wantInsecure := tc.name == "empty"
			if c.Insecure == nil || *c.Insecure != wantInsecure {
				t.Errorf("insecure = %v, want %v", c.Insecure, wantInsecure)
			}
			c.Insecure = nil
			if c.Endpoint != tc.want.Endpoint || c.Protocol != tc.want.Protocol || c.Interval != tc.want.Interval ||
				c.Timeout != tc.want.Timeout || c.MaxQueue != tc.want.MaxQueue || c.Disabled != tc.want.Disabled || c.Temporality != tc.want.Temporality ||
				len(c.Headers) != len(tc.want.Headers) || c.Headers["Authorization"] != tc.want.Headers["Authorization"] {
				t.Errorf("got %+v, want %+v", c, tc.want)
			}
		})
	}
	if got := (Config{Protocol: ProtocolHTTP}).WithDefaults().Endpoint; got != DefaultEndpointHTTP {
		t.Errorf("http default endpoint %q", got)
	}
	// Defaults must not share the Insecure pointer between calls.
	a, b := Config{}.WithDefaults(), Config{}.WithDefaults()
	*a.Insecure = false
	if !*b.Insecure {
		t.Error("WithDefaults shares its Insecure pointer")
	}
}
