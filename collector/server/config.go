package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
)

// Config is the collector's configuration (YAML file, overridden by flags).
type Config struct {
	DataDir    string     `yaml:"data_dir"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
	OTLP       OTLP       `yaml:"otlp"`
	AdminAddr  string     `yaml:"admin_addr"`
	Spool      Spool      `yaml:"spool"`
	Writer     Writer     `yaml:"writer"`
	Cluster    Cluster    `yaml:"cluster"`
	// Drift configures drift detection (defaults apply when absent).
	Drift *drift.Config `yaml:"drift"`
	// Jobs configures re-optimization jobs; absent, incidents are recorded
	// but no jobs run.
	Jobs *jobs.Config `yaml:"jobs"`
}

// ClickHouse says where the data goes.
type ClickHouse struct {
	// DSN is "embedded" (default) or clickhouse://host:9000/...
	DSN      string `yaml:"dsn"`
	Database string `yaml:"database"`
	// Cluster, when set, creates the schema ON CLUSTER with Replicated
	// engines and Distributed tables.
	Cluster string `yaml:"cluster"`
	TTLDays int    `yaml:"ttl_days"`
}

// OTLP configures the receivers.
type OTLP struct {
	GRPCAddr        string `yaml:"grpc_addr"`
	HTTPAddr        string `yaml:"http_addr"`
	MaxRequestBytes int    `yaml:"max_request_bytes"`
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
}

// Cluster configures membership.
type Cluster struct {
	NodeName   string   `yaml:"node_name"`
	GossipAddr string   `yaml:"gossip_addr"`
	Join       []string `yaml:"join"`
	// KeyFile holds the base64 gossip encryption key.
	KeyFile string `yaml:"key_file"`
	// Disabled runs a single node without gossip.
	Disabled bool `yaml:"disabled"`
}

// Default returns the defaults.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:    "var/collector",
		ClickHouse: ClickHouse{DSN: store.Embedded, Database: "drover", TTLDays: 30},
		OTLP:       OTLP{GRPCAddr: ":4317", HTTPAddr: ":4318", MaxRequestBytes: 16 << 20},
		AdminAddr:  ":7070",
		Spool:      Spool{MaxBytes: 1 << 30, SegmentBytes: 64 << 20, Sync: spool.SyncAlways},
		Writer:     Writer{BatchRows: ingest.DefaultBatchRows, FlushInterval: time.Second},
		Cluster:    Cluster{NodeName: host, GossipAddr: ":7946"},
	}
}

// Load reads a YAML file over the defaults (unknown fields are errors).
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Validate returns every problem with its field path.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: is required"))
	}
	if c.ClickHouse.Database == "" {
		errs = append(errs, errors.New("clickhouse.database: is required"))
	}
	if c.ClickHouse.TTLDays < 0 {
		errs = append(errs, errors.New("clickhouse.ttl_days: must be >= 0"))
	}
	if c.Spool.MaxBytes < 0 || c.Spool.SegmentBytes < 0 {
		errs = append(errs, errors.New("spool.max_bytes, spool.segment_bytes: must be >= 0"))
	}
	if c.Writer.BatchRows < 0 || c.Writer.FlushInterval < 0 {
		errs = append(errs, errors.New("writer.batch_rows, writer.flush_interval: must be >= 0"))
	}
	if c.Drift != nil {
		if err := c.Drift.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("drift: %w", err))
		}
	}
	if c.Jobs != nil {
		if err := c.Jobs.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("jobs: %w", err))
		}
	}
	if c.OTLP.MaxRequestBytes < 0 {
		errs = append(errs, errors.New("otlp.max_request_bytes: must be >= 0"))
	}
	return errors.Join(errs...)
}
