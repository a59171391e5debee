package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/fieldpath"
	"github.com/drover-ml/drover/shared/redact"
	"github.com/drover-ml/drover/shared/tlsconfig"
)

// Config is the collector's configuration (YAML file, overridden by flags).
//
// Start from Default (Load does): a key the file omits keeps its default,
// a key it sets is taken literally, and Validate rejects the values that
// make no sense, naming the field from the file's root
// ("writer.batch_rows: must be >= 1, got 0"). Code that reads a Config
// never re-defaults a field. Every section is always present: optional
// subsystems have a switch (jobs.executor: none, cluster.disabled).
type Config struct {
	DataDir    string     `yaml:"data_dir"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
	OTLP       OTLP       `yaml:"otlp"`
	Admin      Admin      `yaml:"admin"`
	// AdminAddr is the deprecated spelling of admin.addr, still read from
	// files: Load moves it into Admin.Addr (a file that sets both to
	// different addresses is an error). Do not set it in code.
	AdminAddr string  `yaml:"admin_addr,omitempty"`
	Spool     Spool   `yaml:"spool"`
	Writer    Writer  `yaml:"writer"`
	Cluster   Cluster `yaml:"cluster"`
	// Drift configures drift detection: a default policy and per-model
	// policies (docs/drift.md).
	Drift drift.Config `yaml:"drift"`
	// Jobs configures re-optimization jobs (docs/jobs.md). With executor
	// none (the default) incidents are recorded but no jobs run.
	Jobs jobs.Config `yaml:"jobs"`
	// Auth configures the admin API's and receivers' tokens
	// (docs/security.md).
	Auth auth.Config `yaml:"auth"`
	// Registry configures the model registry's object store and garbage
	// collection (docs/registry.md).
	Registry Registry `yaml:"registry"`
	// Fleet configures fleet control (docs/fleet.md): when an agent not
	// seen is gone.
	Fleet fleet.Config `yaml:"fleet"`
	// Memory tunes the Go garbage collector of the collector process
	// (docs/collector.md, Memory); drover-collector applies it at start.
	Memory Memory `yaml:"memory"`
}

// Registry configures the model registry.
type Registry struct {
	// BlobURL is the object store of the versions' files: file:///abs/dir,
	// s3://bucket?region=..., gs://bucket or azblob://container. "" means
	// file://<data_dir>/registry/blobs (BlobStoreURL resolves it).
	BlobURL string `yaml:"blob_url"`
	// SharedPath declares that a file:// store is one directory every
	// collector of the cluster mounts (NFS and the like). A collector that
	// joins a cluster refuses a file:// store without it: a version
	// published through one node must be pullable from every node.
	SharedPath bool `yaml:"shared_path"`
	// GCInterval is how often unreferenced blobs are collected; GCGrace how
	// old an unreferenced blob must be to go (longer than the longest
	// publish).
	GCInterval time.Duration `yaml:"gc_interval"`
	GCGrace    time.Duration `yaml:"gc_grace"`
}

// BlobStoreURL returns registry.blob_url, or the default file:// store
// under data_dir when it is empty.
func (c Config) BlobStoreURL() (string, error) {
	if c.Registry.BlobURL != "" {
		return c.Registry.BlobURL, nil
	}
	return registry.FileURL(filepath.Join(c.DataDir, "registry", "blobs"))
}

// ClickHouse says where the data goes.
type ClickHouse struct {
	// DSN is "embedded" (default) or clickhouse://host:9000/...
	DSN      string `yaml:"dsn"`
	Database string `yaml:"database"`
	// Cluster, when set, creates the schema ON CLUSTER with Replicated
	// engines and Distributed tables.
	Cluster string `yaml:"cluster"`
	// TTLDays is how long raw data is kept; default 30.
	TTLDays int `yaml:"ttl_days"`
	// Embedded configures the embedded engine (dsn: embedded).
	Embedded Embedded `yaml:"embedded"`
}

// Embedded configures the embedded ClickHouse engine's loopback listeners.
// A port of 0 (the default) is a free port chosen at each start, so tests
// and benchmarks run several engines side by side; a port set here is
// fixed (`make run` uses 9000 and 8123 so that Grafana and clients find
// the engine), and a start fails, naming the key, when it is taken.
type Embedded struct {
	TCPPort  int `yaml:"tcp_port"`
	HTTPPort int `yaml:"http_port"`
}

// OTLP configures the receivers.
type OTLP struct {
	GRPCAddr        string `yaml:"grpc_addr"`
	HTTPAddr        string `yaml:"http_addr"`
	MaxRequestBytes int    `yaml:"max_request_bytes"`
	// The input rules every point and log record must meet when received
	// (ingest.Limits, docs/collector.md "Input rules"): older than MaxAge
	// or further ahead than MaxFuture, or over the attribute caps, it is
	// rejected in the OTLP partial-success answer.
	MaxAge                 time.Duration `yaml:"max_age"`
	MaxFuture              time.Duration `yaml:"max_future"`
	MaxAttributes          int           `yaml:"max_attributes"`
	MaxAttributeKeyBytes   int           `yaml:"max_attribute_key_bytes"`
	MaxAttributeValueBytes int           `yaml:"max_attribute_value_bytes"`
	// TLS serves both receivers over TLS (off while cert_file is empty).
	// With client_auth request or require, a client certificate verified
	// against client_ca_file is an agent's identity: a request that carries
	// no token is accepted as the agent "cert:<subject CN>".
	TLS tlsconfig.Server `yaml:"tls"`
	// MaxConnections bounds the connections each receiver (gRPC, HTTP)
	// holds open at once; more wait in the accept queue. Default 1024.
	MaxConnections int `yaml:"max_connections"`
	// MaxConcurrentStreams bounds the calls in flight on one gRPC
	// connection; default 100.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	// ReadHeaderTimeout bounds an HTTP request's headers and a gRPC
	// connection's handshake; default 10s. ReadTimeout bounds reading one
	// whole HTTP request (max_request_bytes of it); default 1m.
	// IdleTimeout closes HTTP and gRPC connections that carried no request
	// for that long; default 5m (exporters reconnect).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// ResourceCacheBytes bounds the cache of converted OTLP resources
	// (ingest.ResourceCache), least recently used evicted first; default
	// 32 MiB.
	ResourceCacheBytes int64 `yaml:"resource_cache_bytes"`
	// AdvertiseGRPC (host:port) and AdvertiseHTTP (a URL) are where the
	// agents that register with this collector are told to send OTLP
	// (docs/fleet.md); default the receivers' ports on the cluster's
	// advertise address or, without one, on this host's name.
	AdvertiseGRPC string `yaml:"advertise_grpc"`
	AdvertiseHTTP string `yaml:"advertise_http"`
}

// Limits are the receivers' input rules.
func (o OTLP) Limits() ingest.Limits {
	return ingest.Limits{MaxAge: o.MaxAge, MaxFuture: o.MaxFuture, MaxAttributes: o.MaxAttributes,
		MaxKeyBytes: o.MaxAttributeKeyBytes, MaxValueBytes: o.MaxAttributeValueBytes}
}

// Admin configures the admin API's listener.
type Admin struct {
	// Addr is the listen address; default ":7070".
	Addr string `yaml:"addr"`
	// AdvertiseAddr is the host:port other collectors of the cluster reach
	// this admin API at (they forward the registry's commits to a model's
	// owner). Default: Addr, with an unspecified host replaced by the IP
	// this node advertises for gossip.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// TLS serves the admin API over TLS (off while cert_file is empty);
	// health checks (/healthz, /readyz) too.
	TLS tlsconfig.Server `yaml:"tls"`
	// ClientCerts maps the subject common names of client certificates
	// verified against tls.client_ca_file (client_auth request or require)
	// to roles: a request without a token over such a certificate gets
	// that role, as "cert:<CN>". A certificate whose name is not listed is
	// no identity (its requests need a token).
	ClientCerts map[string]auth.Role `yaml:"client_certs"`
	// ClientTLS is how this collector reaches the other collectors' admin
	// APIs (the registry forwards commits to a model's owner) when
	// tls is on: ca_file verifies them, cert_file and key_file are this
	// node's client certificate for peers that require one.
	ClientTLS tlsconfig.Client `yaml:"client_tls"`
	// MaxConnections bounds the connections held open at once; default
	// 16384: each agent of the fleet holds a long-poll and an inventory
	// connection (docs/fleet.md). Each connection is a file descriptor:
	// the process needs an RLIMIT_NOFILE above it (Go raises the soft
	// limit to the hard one at start on Linux).
	MaxConnections int `yaml:"max_connections"`
	// ReadHeaderTimeout bounds a request's headers (and the TLS
	// handshake); default 10s. ReadTimeout bounds a whole request, body
	// included; default 0, no bound, because a model's files are uploaded
	// as request bodies. IdleTimeout closes keep-alive connections idle
	// that long; default 2m.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// Scheme is the URL scheme of the admin API: https with tls, else http.
func (a Admin) Scheme() string {
	if a.TLS.Enabled() {
		return "https"
	}
	return "http"
}

// Spool configures the durable spool.
type Spool struct {
	MaxBytes     int64            `yaml:"max_bytes"`
	SegmentBytes int64            `yaml:"segment_bytes"`
	Sync         spool.SyncPolicy `yaml:"sync"`
	SkipCorrupt  bool             `yaml:"skip_corrupt"`
}

// DefaultRowCacheBytes is writer.row_cache_bytes's default.
const DefaultRowCacheBytes = 64 << 20

// Writer configures batching into ClickHouse.
type Writer struct {
	BatchRows     int           `yaml:"batch_rows"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	// RowCacheBytes bounds the memory of the rows converted at receive time
	// that wait for the writer (besides twice batch_rows rows): while the
	// writer inserts and the cache is full, requests wait for room.
	RowCacheBytes int64 `yaml:"row_cache_bytes"`
	// DeadLetterFileMaxBytes bounds <data_dir>/dead_letters.jsonl, where
	// rows go that ClickHouse refused for their data when the dead_letters
	// table refuses them too (docs/collector.md).
	DeadLetterFileMaxBytes int64 `yaml:"dead_letter_file_max_bytes"`
}

// Cluster configures membership.
type Cluster struct {
	// NodeName names this collector in the cluster, in jobs and in drift
	// results; default the hostname.
	NodeName   string   `yaml:"node_name"`
	GossipAddr string   `yaml:"gossip_addr"`
	Join       []string `yaml:"join"`
	// AdvertiseAddr is the IP or IP:port peers use to reach this node's
	// gossip, when it differs from gossip_addr (NAT, port mapping).
	AdvertiseAddr string `yaml:"advertise_addr"`
	// KeyFile holds the base64 gossip encryption key.
	KeyFile string `yaml:"key_file"`
	// Key is the key's base64 text given another way (drover-collector
	// reads DROVER_GOSSIP_KEY into it); key_file wins when both are set.
	Key string `yaml:"-"`
	// Insecure runs gossip without encryption and authentication: the
	// explicit way out of the key a node otherwise needs (GossipKey).
	Insecure bool `yaml:"insecure"`
	// Disabled runs a single node without gossip.
	Disabled bool `yaml:"disabled"`
}

// GossipKeyFile is the key a collector creates in its data dir when it
// starts without one and joins nobody.
const GossipKeyFile = "gossip.key"

// GossipKey returns the gossip key: key_file's, else Key's
// (DROVER_GOSSIP_KEY), else the one in <data_dir>/gossip.key. A node that
// joins nobody creates that file if it is missing (created is then its
// path, to be logged); a node that joins peers without any key is refused,
// with the way to share one. With insecure: true it returns no key.
func (c Config) GossipKey() (key []byte, created string, err error) {
	cl := c.Cluster
	switch {
	case cl.Disabled || cl.Insecure:
		return nil, "", nil
	case cl.KeyFile != "":
		key, err = ring.ReadSecretKeyFile(cl.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("cluster.key_file: %w", err)
		}
		return key, "", nil
	case cl.Key != "":
		key, err = ring.ParseSecretKey(cl.Key)
		if err != nil {
			return nil, "", fmt.Errorf("DROVER_GOSSIP_KEY: %w", err)
		}
		return key, "", nil
	}
	path := filepath.Join(c.DataDir, GossipKeyFile)
	if len(cl.Join) > 0 {
		key, err = ring.ReadSecretKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("cluster.join: this node joins %v without a gossip key: copy the key of a running node "+
				"(its <data_dir>/%s, or the file its cluster.key_file names) to this node and set cluster.key_file (--gossip-key-file) "+
				"or DROVER_GOSSIP_KEY; or set cluster.insecure: true to gossip unencrypted", cl.Join, GossipKeyFile)
		}
		if err != nil {
			return nil, "", fmt.Errorf("gossip key: %w", err)
		}
		return key, "", nil
	}
	key, made, err := ring.LoadOrCreateSecretKeyFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("gossip key: %w", err)
	}
	if made {
		created = path
	}
	return key, created, nil
}

// Default returns the defaults.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:    "var/collector",
		ClickHouse: ClickHouse{DSN: store.Embedded, Database: "drover", TTLDays: 30},
		OTLP: OTLP{GRPCAddr: ":4317", HTTPAddr: ":4318", MaxRequestBytes: 16 << 20,
			MaxAge: ingest.DefaultMaxAge, MaxFuture: ingest.DefaultMaxFuture, MaxAttributes: ingest.DefaultMaxAttributes,
			MaxAttributeKeyBytes: ingest.DefaultMaxKeyBytes, MaxAttributeValueBytes: ingest.DefaultMaxValueBytes,
			MaxConnections: 1024, MaxConcurrentStreams: 100, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 5 * time.Minute,
			ResourceCacheBytes: ingest.DefaultResourceCacheBytes},
		Admin:    Admin{Addr: ":7070", MaxConnections: 16384, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		Spool:    Spool{MaxBytes: 1 << 30, SegmentBytes: 64 << 20, Sync: spool.SyncAlways},
		Writer:   Writer{BatchRows: ingest.DefaultBatchRows, FlushInterval: 1500 * time.Millisecond, RowCacheBytes: DefaultRowCacheBytes, DeadLetterFileMaxBytes: 256 << 20},
		Cluster:  Cluster{NodeName: host, GossipAddr: fmt.Sprintf(":%d", ring.DefaultPort)},
		Drift:    drift.DefaultConfig(),
		Jobs:     jobs.DefaultConfig(),
		Auth:     auth.DefaultConfig(),
		Registry: Registry{GCInterval: time.Hour, GCGrace: 24 * time.Hour},
		Fleet:    fleet.DefaultConfig(),
		Memory:   Memory{GCPercent: DefaultGCPercent},
	}
}

// Load reads a YAML file over the defaults (unknown fields are errors, in
// every section) and resolves the deprecated admin_addr. It does not
// validate: flags may still override fields; call Validate after them.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	cfg, err = Parse(b)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a YAML configuration over the defaults, as Load does.
func Parse(b []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, err
	}
	if cfg.AdminAddr != "" {
		// Whether admin.addr was written, not defaulted: the strict decode
		// above already checked every field.
		var probe struct {
			Admin struct {
				Addr *string `yaml:"addr"`
			} `yaml:"admin"`
		}
		_ = yaml.Unmarshal(b, &probe)
		if a := probe.Admin.Addr; a != nil && *a != cfg.AdminAddr {
			return cfg, fmt.Errorf("admin_addr: deprecated spelling of admin.addr, and the file sets both: %q and %q; keep admin.addr", cfg.AdminAddr, *a)
		}
		cfg.Admin.Addr, cfg.AdminAddr = cfg.AdminAddr, ""
	}
	return cfg, nil
}

// Validate returns every problem with its field path from the file's root.
// It checks everything that can be checked before ClickHouse starts: the
// addresses parse, the DSN parses, the gossip key file reads as a key.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: is required"))
	}
	if c.AdminAddr != "" && c.AdminAddr != c.Admin.Addr {
		errs = append(errs, fmt.Errorf("admin_addr: deprecated spelling of admin.addr, set to %q while admin.addr is %q; set admin.addr only", c.AdminAddr, c.Admin.Addr))
	}
	errs = append(errs,
		fieldpath.Prefix("clickhouse", c.ClickHouse.Validate()),
		fieldpath.Prefix("otlp", c.OTLP.Validate()),
		fieldpath.Prefix("admin", c.Admin.Validate()),
		fieldpath.Prefix("spool", c.Spool.Validate()),
		fieldpath.Prefix("writer", c.Writer.Validate()),
		fieldpath.Prefix("cluster", c.Cluster.Validate()),
		fieldpath.Prefix("drift", c.Drift.Validate()),
		fieldpath.Prefix("jobs", c.Jobs.Validate()),
		c.Auth.Validate(), // its errors already carry "auth."
		fieldpath.Prefix("registry", c.Registry.Validate()),
		fieldpath.Prefix("fleet", c.Fleet.Validate()),
		fieldpath.Prefix("memory", c.Memory.Validate()),
	)
	// Collectors forward the registry's commits to each other's admin API:
	// with client certificates required there, each needs one.
	if !c.Cluster.Disabled && c.Admin.TLS.ClientAuth == tlsconfig.ClientAuthRequire && c.Admin.ClientTLS.CertFile == "" {
		errs = append(errs, errors.New("admin.client_tls.cert_file: required in a cluster when admin.tls.client_auth is require "+
			"(collectors forward commits to each other's admin API); give this node a client certificate of admin.tls.client_ca_file, "+
			"or set cluster.disabled: true"))
	}
	// A node-local store in a cluster: a version published through this
	// node could not be pulled from the others.
	joins := !c.Cluster.Disabled && len(c.Cluster.Join) > 0
	if joins && !c.Registry.SharedPath && (c.Registry.BlobURL == "" || strings.HasPrefix(c.Registry.BlobURL, "file://")) {
		where := c.Registry.BlobURL
		if where == "" {
			where = "the default file://<data_dir>/registry/blobs"
		}
		errs = append(errs, fmt.Errorf("registry.blob_url: %s is a node-local store and this collector joins a cluster (cluster.join); "+
			"use an object store (s3://, gs://, azblob://), or set registry.shared_path: true if every collector mounts the same directory", where))
	}
	return errors.Join(errs...)
}

// Validate checks the registry section; paths are relative to it.
func (r Registry) Validate() error {
	var errs []error
	if r.BlobURL != "" {
		u, err := url.Parse(r.BlobURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("blob_url: %s", redact.Text(err.Error())))
		case u.Scheme == "file":
			if !strings.HasPrefix(u.Path, "/") || u.Host != "" {
				errs = append(errs, fmt.Errorf("blob_url: %q: a file:// URL needs an absolute path, like file:///var/lib/drover/registry/blobs", redact.URL(r.BlobURL)))
			}
		case u.Scheme == "s3" || u.Scheme == "gs" || u.Scheme == "azblob":
			if u.Host == "" {
				errs = append(errs, fmt.Errorf("blob_url: %q: names no bucket", redact.URL(r.BlobURL)))
			}
		default:
			errs = append(errs, fmt.Errorf("blob_url: %q: want file:///abs/dir, s3://bucket, gs://bucket or azblob://container", redact.URL(r.BlobURL)))
		}
	}
	if r.GCInterval <= 0 {
		errs = append(errs, fmt.Errorf("gc_interval: must be > 0, got %s", r.GCInterval))
	}
	if r.GCGrace < time.Minute {
		errs = append(errs, fmt.Errorf("gc_grace: must be >= 1m (longer than the longest publish), got %s", r.GCGrace))
	}
	return errors.Join(errs...)
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	clusterRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// Validate checks the ClickHouse section; paths are relative to it.
func (c ClickHouse) Validate() error {
	var errs []error
	switch {
	case c.DSN == store.Embedded:
	case strings.HasPrefix(c.DSN, "clickhouse://") || strings.HasPrefix(c.DSN, "tcp://"):
		if _, err := clickhouse.ParseDSN(c.DSN); err != nil {
			errs = append(errs, fmt.Errorf("dsn: %s", redact.Text(err.Error())))
		}
	default:
		errs = append(errs, fmt.Errorf("dsn: %q: want %q or a DSN such as clickhouse://host:9000/drover", redact.URL(c.DSN), store.Embedded))
	}
	if !identRE.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("database: %q: must be letters, digits and _, not starting with a digit", c.Database))
	}
	if c.Cluster != "" && !clusterRE.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("cluster: %q: must be letters, digits, _, . and -", c.Cluster))
	}
	if c.TTLDays < 1 {
		errs = append(errs, fmt.Errorf("ttl_days: must be >= 1, got %d", c.TTLDays))
	}
	e := c.Embedded
	for _, p := range []struct {
		name string
		port int
	}{{"tcp_port", e.TCPPort}, {"http_port", e.HTTPPort}} {
		if p.port < 0 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("embedded.%s: must be 0 (a free port) or 1-65535, got %d", p.name, p.port))
		}
	}
	if e.TCPPort != 0 && e.TCPPort == e.HTTPPort {
		errs = append(errs, fmt.Errorf("embedded.http_port: %d is also embedded.tcp_port; the engine needs two ports", e.HTTPPort))
	}
	if (e.TCPPort != 0 || e.HTTPPort != 0) && c.DSN != store.Embedded {
		errs = append(errs, errors.New("embedded: ports set while dsn is not \"embedded\"; remove them or set dsn: embedded"))
	}
	return errors.Join(errs...)
}

// Validate checks the receivers' section; paths are relative to it.
func (o OTLP) Validate() error {
	var errs []error
	if err := checkListenAddr(o.GRPCAddr); err != nil {
		errs = append(errs, fmt.Errorf("grpc_addr: %w", err))
	}
	if err := checkListenAddr(o.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http_addr: %w", err))
	}
	if o.AdvertiseGRPC != "" {
		if _, _, err := net.SplitHostPort(o.AdvertiseGRPC); err != nil {
			errs = append(errs, fmt.Errorf("advertise_grpc: want host:port: %w", err))
		}
	}
	if o.AdvertiseHTTP != "" {
		if u, err := url.Parse(o.AdvertiseHTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("advertise_http: want an http:// or https:// URL, got %q", o.AdvertiseHTTP))
		}
	}
	if o.MaxRequestBytes < 1 {
		errs = append(errs, fmt.Errorf("max_request_bytes: must be >= 1, got %d", o.MaxRequestBytes))
	}
	if o.ResourceCacheBytes < 1 {
		errs = append(errs, fmt.Errorf("resource_cache_bytes: must be >= 1, got %d", o.ResourceCacheBytes))
	}
	if o.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("max_age: must be > 0, got %s", o.MaxAge))
	}
	if o.MaxFuture <= 0 {
		errs = append(errs, fmt.Errorf("max_future: must be > 0, got %s", o.MaxFuture))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_attributes", o.MaxAttributes}, {"max_attribute_key_bytes", o.MaxAttributeKeyBytes}, {"max_attribute_value_bytes", o.MaxAttributeValueBytes},
		{"max_connections", o.MaxConnections}, {"max_concurrent_streams", int(o.MaxConcurrentStreams)}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("%s: must be >= 1, got %d", f.name, f.v))
		}
	}
	errs = append(errs, checkTimeouts(o.ReadHeaderTimeout, o.ReadTimeout, o.IdleTimeout),
		fieldpath.Prefix("tls", o.TLS.Validate()))
	return errors.Join(errs...)
}

// checkTimeouts checks a listener's read_header_timeout (> 0), and its
// read_timeout and idle_timeout (>= 0, 0: none).
func checkTimeouts(readHeader, read, idle time.Duration) error {
	var errs []error
	if readHeader <= 0 {
		errs = append(errs, fmt.Errorf("read_header_timeout: must be > 0, got %s", readHeader))
	}
	if read < 0 {
		errs = append(errs, fmt.Errorf("read_timeout: must be >= 0 (0: no bound), got %s", read))
	}
	if idle < 0 {
		errs = append(errs, fmt.Errorf("idle_timeout: must be >= 0 (0: never), got %s", idle))
	}
	return errors.Join(errs...)
}

// ServerTLS is the receivers' *tls.Config (nil without TLS); onError
// hears of certificate files that fail to reload.
func (o OTLP) ServerTLS(onError func(error)) (*tls.Config, error) {
	c, err := o.TLS.Config(onError)
	if err != nil {
		return nil, fmt.Errorf("otlp.tls: %w", err)
	}
	return c, nil
}

// Validate checks the admin listener; paths are relative to it.
func (a Admin) Validate() error {
	var errs []error
	if err := checkListenAddr(a.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr: %w", err))
	}
	if a.AdvertiseAddr != "" {
		host, port, err := net.SplitHostPort(a.AdvertiseAddr)
		if err != nil || host == "" || port == "" || len(a.AdvertiseAddr) > 255 {
			errs = append(errs, fmt.Errorf("advertise_addr: want host:port (at most 255 bytes), got %q", a.AdvertiseAddr))
		}
	}
	if a.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("max_connections: must be >= 1, got %d", a.MaxConnections))
	}
	errs = append(errs, checkTimeouts(a.ReadHeaderTimeout, a.ReadTimeout, a.IdleTimeout),
		fieldpath.Prefix("tls", a.TLS.Validate()),
		fieldpath.Prefix("client_tls", a.ClientTLS.Validate()))
	if len(a.ClientCerts) > 0 && (a.TLS.ClientAuth == "" || a.TLS.ClientAuth == tlsconfig.ClientAuthNone) {
		errs = append(errs, errors.New("client_certs: set, but tls.client_auth is none: no client certificate is verified; set tls.client_auth to request or require (with tls.client_ca_file)"))
	}
	for _, cn := range slices.Sorted(maps.Keys(a.ClientCerts)) {
		if cn == "" {
			errs = append(errs, errors.New("client_certs: an empty common name"))
		}
		if _, err := auth.ParseRole(string(a.ClientCerts[cn])); err != nil {
			errs = append(errs, fmt.Errorf("client_certs[%s]: %w", cn, err))
		}
	}
	return errors.Join(errs...)
}

// ServerTLS is the admin listener's *tls.Config (nil without TLS);
// onError hears of certificate files that fail to reload.
func (a Admin) ServerTLS(onError func(error)) (*tls.Config, error) {
	c, err := a.TLS.Config(onError)
	if err != nil {
		return nil, fmt.Errorf("admin.tls: %w", err)
	}
	return c, nil
}

// PeerTLS is the *tls.Config this collector reaches other collectors'
// admin APIs with (client_tls), or nil when tls is off.
func (a Admin) PeerTLS(onError func(error)) (*tls.Config, error) {
	if !a.TLS.Enabled() {
		return nil, nil
	}
	c, err := a.ClientTLS.Config(onError)
	if err != nil {
		return nil, fmt.Errorf("admin.client_tls: %w", err)
	}
	return c, nil
}

// Validate checks the spool section; paths are relative to it.
func (s Spool) Validate() error {
	var errs []error
	if s.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("max_bytes: must be >= 1, got %d", s.MaxBytes))
	}
	if s.SegmentBytes < 1 {
		errs = append(errs, fmt.Errorf("segment_bytes: must be >= 1, got %d", s.SegmentBytes))
	}
	if len(errs) == 0 {
		// The spool's own limits (max_bytes above a record header).
		errs = append(errs, spool.Options{MaxBytes: s.MaxBytes, SegmentBytes: s.SegmentBytes, Sync: s.Sync}.Validate())
	}
	return errors.Join(errs...)
}

// Validate checks the writer section; paths are relative to it.
func (w Writer) Validate() error {
	var errs []error
	if w.BatchRows < 1 {
		errs = append(errs, fmt.Errorf("batch_rows: must be >= 1, got %d", w.BatchRows))
	}
	if w.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("flush_interval: must be > 0, got %s", w.FlushInterval))
	}
	if w.RowCacheBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("row_cache_bytes: must be >= 1048576 (1 MiB), got %d", w.RowCacheBytes))
	}
	if w.DeadLetterFileMaxBytes < 1 {
		errs = append(errs, fmt.Errorf("dead_letter_file_max_bytes: must be >= 1, got %d", w.DeadLetterFileMaxBytes))
	}
	return errors.Join(errs...)
}

// Validate checks the cluster section; paths are relative to it. With
// gossip on it reads the key file, so a missing or bad key is reported
// before anything starts.
func (c Cluster) Validate() error {
	var errs []error
	if err := ring.CheckNodeName(c.NodeName); err != nil {
		errs = append(errs, fmt.Errorf("node_name: %w", err))
	}
	if c.Disabled {
		return errors.Join(errs...)
	}
	if err := ring.CheckBindAddr(c.GossipAddr); err != nil {
		errs = append(errs, fmt.Errorf("gossip_addr: %w", err))
	}
	for i, j := range c.Join {
		if err := ring.CheckJoinEntry(j); err != nil {
			errs = append(errs, fmt.Errorf("join[%d]: %w", i, err))
		}
	}
	if c.KeyFile != "" {
		if _, err := ring.ReadSecretKeyFile(c.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("key_file: %w", err))
		}
	}
	if c.AdvertiseAddr != "" {
		if err := ring.CheckAdvertiseAddr(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("advertise_addr: %w", err))
		}
	}
	return errors.Join(errs...)
}

// checkListenAddr accepts host:port with a port from 0 to 65535 (0: any
// free port); the host may be empty (all addresses), a name or an IP.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. :4317 or 127.0.0.1:4317", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return nil
}
