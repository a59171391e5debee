package telemetry

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/shared/fieldpath"
	"github.com/drover-ml/drover/shared/tlsconfig"
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

// Config is the telemetry: section of the agent's configuration. A file is
// read over DefaultConfig: an omitted key keeps its default, an explicit
// value is taken literally, and Validate rejects the ones that make no
// sense (interval: 0). Code that builds a Config may leave fields zero and
// call WithDefaults (New does).
type Config struct {
	// Endpoint is the OTLP receiver as host:port (default localhost:4317
	// for grpc, localhost:4318 for http/protobuf: a file that sets the
	// protocol and no endpoint gets that protocol's default).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http/protobuf.
	Protocol string `yaml:"protocol"`
	// Insecure sends without TLS. Its default follows tls: true without a
	// tls section, false with one (nil means that default). Set it to false
	// without tls to use TLS with the system's roots.
	Insecure *bool `yaml:"insecure"`
	// TLS is how both exporters (grpc and http/protobuf) verify the
	// collector's certificate (ca_file; empty: the system's roots;
	// server_name: the name to verify when the endpoint's host is not in
	// the certificate) and which client certificate they present
	// (cert_file, key_file: with a collector whose otlp.tls.client_auth
	// verifies it, the certificate is the agent's identity and no token is
	// needed). Setting it turns TLS on; insecure: true with it is an
	// error. The files are read when the telemetry starts; the client
	// certificate is read again when it changes.
	TLS *tlsconfig.Client `yaml:"tls"`
	// Headers are sent with every export.
	Headers map[string]string `yaml:"headers"`
	// TokenFile holds the collector token (role agent) sent as
	// "authorization: Bearer <token>" with every export; the collector's
	// receivers require one (docs/security.md). A drover-collector writes an
	// agent token to <its data_dir>/agent.token on its first start. Read
	// once, when the telemetry starts.
	TokenFile string `yaml:"token_file"`
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

	// endpointSet: the file set endpoint (UnmarshalYAML), see
	// ExplicitEndpoint.
	endpointSet bool
}

// ExplicitEndpoint reports whether the endpoint was chosen by the user:
// the file sets telemetry.endpoint (even to the default), or code set an
// endpoint other than the protocol's default. An agent that follows
// collectors sends OTLP where their registration answers say only when it
// is not (docs/fleet.md).
func (c Config) ExplicitEndpoint() bool {
	return c.endpointSet || (c.Endpoint != "" && c.Endpoint != defaultEndpoint(c.Protocol))
}

// DefaultConfig returns the defaults: grpc to localhost:4317 without TLS,
// exports every 10s with a 5s timeout, 2048 queued events, delta
// temporality. Each call returns a fresh Insecure pointer.
func DefaultConfig() Config {
	insecure := true
	return Config{
		Endpoint:    DefaultEndpointGRPC,
		Protocol:    ProtocolGRPC,
		Insecure:    &insecure,
		Interval:    DefaultInterval,
		Timeout:     DefaultTimeout,
		MaxQueue:    DefaultMaxQueue,
		Temporality: TemporalityDelta,
	}
}

// UnmarshalYAML decodes the section over c (DefaultConfig, in the agent's
// config) with the calling decoder, so unknown fields stay errors. When
// the section sets no endpoint, the endpoint is the protocol's default.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Config
	if err := unmarshal((*plain)(c)); err != nil {
		return err
	}
	var keys map[string]yaml.Node
	if err := unmarshal(&keys); err != nil {
		return err
	}
	_, c.endpointSet = keys["endpoint"]
	if !c.endpointSet {
		c.Endpoint = defaultEndpoint(c.Protocol)
	}
	if _, set := keys["insecure"]; !set && c.TLS != nil {
		insecure := false // a tls section turns TLS on
		c.Insecure = &insecure
	}
	return nil
}

// defaultEndpoint is the receiver's default address for protocol.
func defaultEndpoint(protocol string) string {
	if protocol == ProtocolHTTP {
		return DefaultEndpointHTTP
	}
	return DefaultEndpointGRPC
}

// WithDefaults returns c with its zero fields set from DefaultConfig (the
// endpoint from the protocol's), for Configs built in code. It allocates a
// fresh Insecure pointer, so the result shares nothing mutable with c
// except Headers.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Protocol == "" {
		c.Protocol = d.Protocol
	}
	if c.Endpoint == "" {
		c.Endpoint = defaultEndpoint(c.Protocol)
	}
	insecure := c.TLS == nil
	if c.Insecure != nil {
		insecure = *c.Insecure
	}
	c.Insecure = &insecure
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.Temporality == "" {
		c.Temporality = d.Temporality
	}
	return c
}

// insecure reports the effective Insecure setting.
func (c Config) insecure() bool {
	if c.Insecure == nil {
		return c.TLS == nil
	}
	return *c.Insecure
}

// Validate returns every problem, each prefixed with its field path
// relative to the telemetry section. Values are taken literally: an empty
// endpoint or a zero interval is an error, not the default.
func (c Config) Validate() error {
	var errs []error
	add := func(field string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", field, err))
	}
	switch c.Protocol {
	case ProtocolGRPC, ProtocolHTTP:
	default:
		add("protocol", fmt.Errorf("must be %s or %s, got %q", ProtocolGRPC, ProtocolHTTP, c.Protocol))
	}
	if err := validEndpoint(c.Endpoint); err != nil {
		add("endpoint", err)
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
	if c.Interval < 100*time.Millisecond {
		add("interval", fmt.Errorf("must be at least 100ms, got %s", c.Interval))
	}
	if c.Timeout <= 0 {
		add("timeout", fmt.Errorf("must be > 0, got %s", c.Timeout))
	}
	if c.MaxQueue < 1 {
		add("max_queue", fmt.Errorf("must be >= 1, got %d", c.MaxQueue))
	}
	switch c.Temporality {
	case TemporalityDelta, TemporalityCumulative:
	default:
		add("temporality", fmt.Errorf("must be %s or %s, got %q", TemporalityDelta, TemporalityCumulative, c.Temporality))
	}
	if c.TLS != nil {
		if c.insecure() {
			add("insecure", errors.New("true, but a tls section is set: remove insecure (tls turns TLS on) or the tls section"))
		}
		errs = append(errs, fieldpath.Prefix("tls", c.TLS.Validate()))
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
