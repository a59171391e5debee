package server

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestBadConfigs: every testdata/*.bad.yaml fails Load or Validate with the
// errors its "# error:" lines name, each with its path from the root.
func TestBadConfigs(t *testing.T) {
	testenv.BadConfigs(t, "testdata/*.bad.yaml", func(path string) error {
		cfg, err := Load(path)
		if err != nil {
			return err
		}
		return cfg.Validate()
	})
}

// parse decodes doc as a file would be, and validates it.
func parse(t *testing.T, doc string) Config {
	t.Helper()
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(%q): %v", doc, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(%q): %v", doc, err)
	}
	return cfg
}

func TestDefaultsAreValid(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default: %v", err)
	}
	// An empty file keeps every default, including the subsystems' own.
	c := parse(t, "")
	if c.Admin.Addr != ":7070" || c.Writer.BatchRows != d.Writer.BatchRows || c.Writer.FlushInterval != 1500*time.Millisecond ||
		c.Jobs.Executor != jobs.ExecutorBuiltin || c.Jobs.MaxConcurrent != 2 || c.Drift.For("iris").PSIThreshold != 0.2 {
		t.Errorf("empty file = %+v", c)
	}
}

func TestAdminAddr(t *testing.T) {
	if c := parse(t, "admin: {addr: \"127.0.0.1:7071\"}\n"); c.Admin.Addr != "127.0.0.1:7071" {
		t.Errorf("admin.addr = %q", c.Admin.Addr)
	}
	// The deprecated key still works, alone or agreeing with the block.
	for _, doc := range []string{"admin_addr: \":7072\"\n", "admin_addr: \":7072\"\nadmin: {addr: \":7072\"}\n"} {
		if c := parse(t, doc); c.Admin.Addr != ":7072" || c.AdminAddr != "" {
			t.Errorf("%q: admin = %q, admin_addr = %q; want :7072 moved into admin.addr", doc, c.Admin.Addr, c.AdminAddr)
		}
	}
	// Set in code and disagreeing: Validate says so.
	c := Default()
	c.AdminAddr = ":1"
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted admin_addr that differs from admin.addr")
	}
}

// TestJobsSection: a jobs section that only tunes limits is valid and keeps
// the builtin executor (the docs/jobs.md example failed with
// max_concurrent: 0 when the section was decoded over a zero value).
func TestJobsSection(t *testing.T) {
	c := parse(t, "jobs:\n  retries: 0\n  max_per_model: 2\n")
	if c.Jobs.Executor != jobs.ExecutorBuiltin || c.Jobs.Retries != 0 || c.Jobs.MaxPerModel != 2 || c.Jobs.MaxConcurrent != 2 {
		t.Errorf("jobs = %+v", c.Jobs)
	}
	c = parse(t, "jobs:\n  executor: command\n  command: {argv: [/bin/true]}\n  model_store: /srv/models\n")
	if c.Jobs.Executor != jobs.ExecutorCommand || c.Jobs.Command.Timeout != time.Hour || c.Jobs.Lease != 2*time.Minute {
		t.Errorf("jobs = %+v", c.Jobs)
	}
}

func TestDriftSection(t *testing.T) {
	c := parse(t, "drift:\n  default: {cooldown: 0s}\n  policies:\n    iris: {psi_threshold: 0.3}\n")
	if p := c.Drift.For("iris"); p.PSIThreshold != 0.3 || p.Cooldown != 0 || p.Window != time.Hour {
		t.Errorf("iris = %+v, want psi 0.3, the default's explicit cooldown 0 and the built-in window", p)
	}
}

func TestGossipKeyFile(t *testing.T) {
	key := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse(t, "cluster:\n  key_file: "+key+"\n")
	// With gossip off the key file is not read.
	parse(t, "cluster:\n  disabled: true\n  key_file: /no/such/file\n")
}

func TestRegistrySection(t *testing.T) {
	c := parse(t, "data_dir: /var/lib/drover\n")
	if u, err := c.BlobStoreURL(); err != nil || u != "file:///var/lib/drover/registry/blobs" {
		t.Errorf("default blob store %q, %v", u, err)
	}
	if c.Registry.GCInterval != time.Hour || c.Registry.GCGrace != 24*time.Hour || c.Registry.SharedPath {
		t.Errorf("registry defaults %+v", c.Registry)
	}
	// In a cluster: an object store, or a file:// store declared shared.
	for _, doc := range []string{
		"cluster: {join: [\"10.0.0.2:7946\"]}\nregistry: {blob_url: \"s3://models?region=eu-west-1\"}\n",
		"cluster: {join: [\"10.0.0.2:7946\"]}\nregistry: {blob_url: \"file:///mnt/shared/blobs\", shared_path: true}\n",
		"cluster: {join: [\"10.0.0.2:7946\"]}\nregistry: {shared_path: true}\n",
		"cluster: {disabled: true, join: [\"10.0.0.2:7946\"]}\n",
	} {
		c := parse(t, doc)
		if u, err := c.BlobStoreURL(); err != nil || u == "" {
			t.Errorf("%q: blob store %q, %v", doc, u, err)
		}
	}
}

// TestGossipKey: where a node's gossip key comes from, and the refusal of
// a node that joins without one.
func TestGossipKey(t *testing.T) {
	keyText := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyFile := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(keyFile, []byte(keyText+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := func(join ...string) Config {
		c := Default()
		c.DataDir = t.TempDir()
		c.Cluster.Join = join
		return c
	}

	// A first node without a key creates one in its data dir, once.
	c := node()
	key, created, err := c.GossipKey()
	if err != nil || len(key) != 32 || created != filepath.Join(c.DataDir, GossipKeyFile) {
		t.Fatalf("first node: %d bytes, created %q, %v", len(key), created, err)
	}
	again, created, err := c.GossipKey()
	if err != nil || created != "" || string(again) != string(key) {
		t.Errorf("restart: created %q, same key %v, %v", created, string(again) == string(key), err)
	}

	// A joining node without a key is refused, with how to share one.
	_, _, err = node("10.0.0.1:7946").GossipKey()
	if err == nil || !strings.Contains(err.Error(), "without a gossip key") || !strings.Contains(err.Error(), "cluster.insecure") {
		t.Errorf("joining without a key: %v", err)
	}
	// ... and accepted with one from a file, from DROVER_GOSSIP_KEY, or in
	// its data dir; or, explicitly, without.
	j := node("10.0.0.1:7946")
	j.Cluster.KeyFile = keyFile
	if key, _, err := j.GossipKey(); err != nil || string(key) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("key_file: %q, %v", key, err)
	}
	j = node("10.0.0.1:7946")
	j.Cluster.Key = keyText
	if key, _, err := j.GossipKey(); err != nil || string(key) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("DROVER_GOSSIP_KEY: %q, %v", key, err)
	}
	j.Cluster.Key = "not base64!"
	if _, _, err := j.GossipKey(); err == nil || !strings.Contains(err.Error(), "DROVER_GOSSIP_KEY") {
		t.Errorf("bad DROVER_GOSSIP_KEY: %v", err)
	}
	j = node("10.0.0.1:7946")
	if err := os.WriteFile(filepath.Join(j.DataDir, GossipKeyFile), []byte(keyText), 0o600); err != nil {
		t.Fatal(err)
	}
	if key, created, err := j.GossipKey(); err != nil || created != "" || len(key) != 32 {
		t.Errorf("key in the data dir: %d bytes, created %q, %v", len(key), created, err)
	}
	j = node("10.0.0.1:7946")
	j.Cluster.Insecure = true
	if key, _, err := j.GossipKey(); err != nil || key != nil {
		t.Errorf("insecure: %v, %v; want no key", key, err)
	}
}

// TestEmbeddedPorts: the embedded engine's ports are free ports (0) unless
// the file fixes them, as `make run` does.
func TestEmbeddedPorts(t *testing.T) {
	if e := parse(t, "").ClickHouse.Embedded; e.TCPPort != 0 || e.HTTPPort != 0 {
		t.Errorf("default clickhouse.embedded = %+v, want free ports (0)", e)
	}
	c := parse(t, "clickhouse:\n  embedded:\n    tcp_port: 9000\n    http_port: 8123\n")
	if e := c.ClickHouse.Embedded; e.TCPPort != 9000 || e.HTTPPort != 8123 {
		t.Errorf("clickhouse.embedded = %+v, want tcp 9000, http 8123", e)
	}
}
