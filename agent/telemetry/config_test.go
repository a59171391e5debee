package telemetry

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// parse decodes a telemetry section as the agent's config does: over the
// zero value, unknown fields rejected, then validated.
func parse(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigTestdata(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = parse(b)
			if strings.HasSuffix(name, ".good.yaml") {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("parse succeeded, want an error")
			}
			for line := range strings.Lines(string(b)) {
				if want, ok := strings.CutPrefix(strings.TrimSpace(line), "# error: "); ok && !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
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
			c = c.WithDefaults()
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
