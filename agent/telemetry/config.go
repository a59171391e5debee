package telemetry

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
)

// Protocols of the OTLP exporters.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Defaults of Config.
const (
	DefaultEndpointGRPC = "localhost:4317"
	DefaultEndpointHTTP = "localhost:4318"
	DefaultInterval     = 10 * time.Second
	DefaultTimeout      = 5 * time.Second
	DefaultMaxQueue     = 2048
)

// Temporalities of the OTLP export of the series this package aggregates
// itself (see Config.Temporality).
const (
	TemporalityDelta      = "delta"
	TemporalityCumulative = "cumulative"
)

// Config is the telemetry: section of the agent's configuration. The zero
// value means "all defaults"; New applies WithDefaults itself.
type Config struct {
	// Endpoint is the OTLP receiver as host:port (default localhost:4317
	// for grpc, localhost:4318 for http/protobuf).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http/protobuf.
	Protocol string `yaml:"protocol"`
	// Insecure sends without TLS (default true). Set it to false to use
	// TLS with the system's roots.
	Insecure *bool `yaml:"insecure"`
	// Headers are sent with every export (for example an auth token).
	Headers map[string]string `yaml:"headers"`
	// Interval is the period of metric exports and the longest time an
	// event waits in the queue (default 10s). Export errors are logged at
	// most once per interval.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one export, retries included (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// Disabled turns OTLP export off; the Prometheus endpoint still works
	// and events are not sent.
	Disabled bool `yaml:"disabled"`
	// MaxQueue bounds the events and samples waiting for export (default
	// 2048). When it is full new ones are dropped and counted in
	// drover.events.dropped.
	MaxQueue int `yaml:"max_queue"`
	// Temporality is how the OTLP export carries drover.requests,
	// drover.request.duration and the fixed-bin drover.distribution:
	// delta (default), the counts since the last successful export, which
	// the collector sums across hosts per minute; or cumulative, the counts
	// since the series started. drover.requests.in_flight, the other
	// instruments and the Prometheus endpoint are cumulative either way.
	Temporality string `yaml:"temporality"`
}

// WithDefaults returns c with unset fields set to their defaults. It
// allocates a fresh Insecure pointer, so the result shares nothing mutable
// with c except Headers.
func (c Config) WithDefaults() Config {
	if c.Protocol == "" {
		c.Protocol = ProtocolGRPC
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpointGRPC
		if c.Protocol == ProtocolHTTP {
			c.Endpoint = DefaultEndpointHTTP
		}
	}
	insecure := true
	if c.Insecure != nil {
		insecure = *c.Insecure
	}
	c.Insecure = &insecure
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.Temporality == "" {
		c.Temporality = TemporalityDelta
	}
	return c
}

// insecure reports the effective Insecure setting.
func (c Config) insecure() bool { return c.Insecure == nil || *c.Insecure }

// Validate returns every problem, each prefixed with its field path
// relative to the telemetry section. Zero values are valid (they mean the
// default).
func (c Config) Validate() error {
	var errs []error
	add := func(field string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", field, err))
	}
	switch c.Protocol {
	case "", ProtocolGRPC, ProtocolHTTP:
	default:
		add("protocol", fmt.Errorf("must be %s or %s, got %q", ProtocolGRPC, ProtocolHTTP, c.Protocol))
	}
	if c.Endpoint != "" {
		if err := validEndpoint(c.Endpoint); err != nil {
			add("endpoint", err)
		}
	}
	keys := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !validHeaderName(k) {
			add("headers."+k, errors.New("not a valid header name"))
		}
	}
	if c.Interval < 0 || (c.Interval > 0 && c.Interval < 100*time.Millisecond) {
		add("interval", errors.New("must be at least 100ms"))
	}
	if c.Timeout < 0 {
		add("timeout", errors.New("must be >= 0"))
	}
	if c.MaxQueue < 0 {
		add("max_queue", errors.New("must be >= 0"))
	}
	switch c.Temporality {
	case "", TemporalityDelta, TemporalityCumulative:
	default:
		add("temporality", fmt.Errorf("must be %s or %s, got %q", TemporalityDelta, TemporalityCumulative, c.Temporality))
	}
	return errors.Join(errs...)
}

// validEndpoint accepts host:port with a numeric port, the form both
// exporters take (no scheme: TLS is chosen by insecure).
func validEndpoint(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if host == "" {
		return fmt.Errorf("want host:port, got %q: empty host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("want host:port, got %q: bad port", s)
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110), which
// gRPC metadata keys also satisfy.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c < 0x80 && c > ' ' && !isSeparator(c):
		default:
			return false
		}
	}
	return true
}

func isSeparator(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}', 0x7f:
		return true
	}
	return false
}
