package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/fieldpath"
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
}

// Spool configures the durable spool.
type Spool struct {
	MaxBytes     int64            `yaml:"max_bytes"`
	SegmentBytes int64            `yaml:"segment_bytes"`
	Sync         spool.SyncPolicy `yaml:"sync"`
	SkipCorrupt  bool             `yaml:"skip_corrupt"`
}

// Writer configures batching into ClickHouse.
type Writer struct {
	BatchRows     int           `yaml:"batch_rows"`
	FlushInterval time.Duration `yaml:"flush_interval"`
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
			MaxAttributeKeyBytes: ingest.DefaultMaxKeyBytes, MaxAttributeValueBytes: ingest.DefaultMaxValueBytes},
		Admin:    Admin{Addr: ":7070"},
		Spool:    Spool{MaxBytes: 1 << 30, SegmentBytes: 64 << 20, Sync: spool.SyncAlways},
		Writer:   Writer{BatchRows: ingest.DefaultBatchRows, FlushInterval: time.Second, DeadLetterFileMaxBytes: 256 << 20},
		Cluster:  Cluster{NodeName: host, GossipAddr: fmt.Sprintf(":%d", ring.DefaultPort)},
		Drift:    drift.DefaultConfig(),
		Jobs:     jobs.DefaultConfig(),
		Auth:     auth.DefaultConfig(),
		Registry: Registry{GCInterval: time.Hour, GCGrace: 24 * time.Hour},
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
	)
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
			errs = append(errs, fmt.Errorf("blob_url: %w", err))
		case u.Scheme == "file":
			if !strings.HasPrefix(u.Path, "/") || u.Host != "" {
				errs = append(errs, fmt.Errorf("blob_url: %q: a file:// URL needs an absolute path, like file:///var/lib/drover/registry/blobs", r.BlobURL))
			}
		case u.Scheme == "s3" || u.Scheme == "gs" || u.Scheme == "azblob":
			if u.Host == "" {
				errs = append(errs, fmt.Errorf("blob_url: %q: names no bucket", r.BlobURL))
			}
		default:
			errs = append(errs, fmt.Errorf("blob_url: %q: want file:///abs/dir, s3://bucket, gs://bucket or azblob://container", r.BlobURL))
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
			errs = append(errs, fmt.Errorf("dsn: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("dsn: %q: want %q or a DSN such as clickhouse://host:9000/drover", c.DSN, store.Embedded))
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
	if o.MaxRequestBytes < 1 {
		errs = append(errs, fmt.Errorf("max_request_bytes: must be >= 1, got %d", o.MaxRequestBytes))
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
	}{{"max_attributes", o.MaxAttributes}, {"max_attribute_key_bytes", o.MaxAttributeKeyBytes}, {"max_attribute_value_bytes", o.MaxAttributeValueBytes}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("%s: must be >= 1, got %d", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// Validate checks the admin listener; paths are relative to it.
func (a Admin) Validate() error {
	if err := checkListenAddr(a.Addr); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	if a.AdvertiseAddr != "" {
		host, port, err := net.SplitHostPort(a.AdvertiseAddr)
		if err != nil || host == "" || port == "" || len(a.AdvertiseAddr) > 255 {
			return fmt.Errorf("advertise_addr: want host:port (at most 255 bytes), got %q", a.AdvertiseAddr)
		}
	}
	return nil
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
