package ring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	with := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	for name, tc := range map[string]struct {
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		"defaults": {cfg: DefaultConfig()},
		"loopback": {cfg: LoopbackConfig("n")},
		"full": {cfg: with(func(c *Config) {
			c.NodeName, c.BindAddr, c.AdvertiseAddr = "c-0", "10.0.0.5:7946", "10.0.0.5:17946"
			c.Join = []string{"c-1:7946", "c-2", "10.0.0.7", "[fd00::1]:7946", "fd00::2", "dnssrv+_gossip._tcp.c.ns.svc"}
			c.SecretKey, c.VirtualNodes = make([]byte, 16), 64
		})},
		"reclaim zero is never": {cfg: with(func(c *Config) { c.DeadNodeReclaimTime = 0 })},
		"zero value is not the defaults": {cfg: Config{}, want: []string{
			"node_name: is required", "bind_addr:", "virtual_nodes: must be between 1 and 4096, got 0",
			"suspicion_mult: must be >= 1, got 0", "rejoin_interval: must be > 0, got 0s", "leave_timeout: must be > 0",
			"probe_interval: must be > 0", "probe_timeout: must be > 0", "gossip_interval: must be > 0", "push_pull_interval: must be > 0",
		}},
		"bind addr":             {cfg: with(func(c *Config) { c.BindAddr = "localhost:7946" }), want: []string{"bind_addr:", "must be an IP"}},
		"bind port":             {cfg: with(func(c *Config) { c.BindAddr = ":99999" }), want: []string{"bind_addr:", "port"}},
		"bind form":             {cfg: with(func(c *Config) { c.BindAddr = "7946" }), want: []string{"bind_addr:", "host:port"}},
		"advertise":             {cfg: with(func(c *Config) { c.AdvertiseAddr = "collector.example.net" }), want: []string{"advertise_addr:", "IP"}},
		"advertise unspecified": {cfg: with(func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }), want: []string{"advertise_addr:", "unspecified"}},
		"join entries": {cfg: with(func(c *Config) { c.Join = []string{"ok:1", "", "host:0", "dnssrv+", "http://x:1"} }),
			want: []string{"join[1]:", "join[2]:", "join[3]:", "join[4]:"}},
		"key length":    {cfg: with(func(c *Config) { c.SecretKey = []byte("short") }), want: []string{"secret_key:", "16, 24 or 32", "got 5"}},
		"vnodes":        {cfg: with(func(c *Config) { c.VirtualNodes = -1 }), want: []string{"virtual_nodes:"}},
		"vnodes max":    {cfg: with(func(c *Config) { c.VirtualNodes = 5000 }), want: []string{"virtual_nodes:", "4096"}},
		"negative":      {cfg: with(func(c *Config) { c.RejoinInterval, c.PushPullInterval, c.DeadNodeReclaimTime = -time.Second, -1, -1 }), want: []string{"rejoin_interval:", "push_pull_interval:", "dead_node_reclaim_time: must not be negative"}},
		"probe timeout": {cfg: with(func(c *Config) { c.ProbeInterval, c.ProbeTimeout = time.Second, 2*time.Second }), want: []string{"probe_timeout:", "shorter than probe_interval"}},
		"node name":     {cfg: with(func(c *Config) { c.NodeName = "a b" }), want: []string{"node_name:", "white space"}},
		"several":       {cfg: with(func(c *Config) { c.BindAddr, c.SecretKey = "x", []byte{1} }), want: []string{"bind_addr:", "secret_key:"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(tc.cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := New(tc.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.BindAddr != ":7946" || c.VirtualNodes != 128 || c.RejoinInterval != 30*time.Second || c.NodeName == "" ||
		c.ProbeTimeout != 500*time.Millisecond || c.DeadNodeReclaimTime != 10*time.Second {
		t.Errorf("defaults = %+v", c)
	}
	// LoopbackConfig starts from the defaults: what it does not speed up
	// keeps its default.
	if l := LoopbackConfig("n"); l.VirtualNodes != 128 || l.NodeName != "n" || l.ProbeInterval != 500*time.Millisecond {
		t.Errorf("loopback = %+v", l)
	}
	// withDefaults sets the logger and nothing else.
	z := Config{}.withDefaults()
	if z.Logger == nil || z.VirtualNodes != 0 || z.BindAddr != "" {
		t.Errorf("withDefaults filled settings: %+v", z)
	}
}

func TestReadSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := ReadSecretKeyFile(good); err != nil || len(k) != 32 {
		t.Errorf("ReadSecretKeyFile(good) = %d bytes, %v", len(k), err)
	}
	if _, err := ReadSecretKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestParseSecretKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32) // encodes with '+' / '-'
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := ParseSecretKey(s)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseSecretKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(make([]byte, 10))} {
		if _, err := ParseSecretKey(s); err == nil {
			t.Errorf("ParseSecretKey(%q) accepted", s)
		}
	}
}

func TestSplitJoinEntry(t *testing.T) {
	for in, want := range map[string]string{
		"host:1":       "host 1",
		"host":         "host 7946",
		"10.0.0.1":     "10.0.0.1 7946",
		"[fd00::1]:80": "fd00::1 80",
		"fd00::1":      "fd00::1 7946",
	} {
		h, p, err := splitJoinEntry(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := h + " " + strconv.Itoa(p); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

func TestLogBridge(t *testing.T) {
	var buf bytes.Buffer
	b := newLogBridge(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n",
		"[INFO] memberlist: Marking n2 as failed\n",
		"[WARN] memberlist: Refuting a suspect message (from: n1)\n",
		"[ERR] memberlist: Failed to send gossip to 127.0.0.1:2: boom\n",
		"[ERR] memberlist: Failed to send gossip to 127.0.0.1:2: boom\n", // repeat: demoted
	} {
		b.Write([]byte(line))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"level=DEBUG", "level=DEBUG", "level=WARN", "level=ERROR", "level=DEBUG"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || strings.Contains(lines[i], "memberlist:") || !strings.Contains(lines[i], "library=memberlist") {
			t.Errorf("line %d = %s, want %s without the memberlist: prefix", i, lines[i], w)
		}
	}
}
