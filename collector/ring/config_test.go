package ring

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		"zero value takes defaults": {cfg: Config{}},
		"loopback":                  {cfg: LoopbackConfig("n")},
		"full": {cfg: Config{
			NodeName: "c-0", BindAddr: "10.0.0.5:7946", AdvertiseAddr: "10.0.0.5:17946",
			Join:      []string{"c-1:7946", "c-2", "10.0.0.7", "[fd00::1]:7946", "fd00::2", "dnssrv+_gossip._tcp.c.ns.svc"},
			SecretKey: make([]byte, 16), VirtualNodes: 64,
		}},
		"bind addr":             {cfg: Config{BindAddr: "localhost:7946"}, want: []string{"bind_addr:", "must be an IP"}},
		"bind port":             {cfg: Config{BindAddr: ":99999"}, want: []string{"bind_addr:", "port"}},
		"bind form":             {cfg: Config{BindAddr: "7946"}, want: []string{"bind_addr:", "host:port"}},
		"advertise":             {cfg: Config{AdvertiseAddr: "collector.example.net"}, want: []string{"advertise_addr:", "IP"}},
		"advertise unspecified": {cfg: Config{AdvertiseAddr: "0.0.0.0"}, want: []string{"advertise_addr:", "unspecified"}},
		"join entries": {cfg: Config{Join: []string{"ok:1", "", "host:0", "dnssrv+", "http://x:1"}},
			want: []string{"join[1]:", "join[2]:", "join[3]:", "join[4]:"}},
		"key length":    {cfg: Config{SecretKey: []byte("short")}, want: []string{"secret_key:", "16, 24 or 32", "got 5"}},
		"vnodes":        {cfg: Config{VirtualNodes: -1}, want: []string{"virtual_nodes:"}},
		"vnodes max":    {cfg: Config{VirtualNodes: 5000}, want: []string{"virtual_nodes:", "4096"}},
		"negative":      {cfg: Config{RejoinInterval: -time.Second, PushPullInterval: -1}, want: []string{"rejoin_interval:", "push_pull_interval:"}},
		"probe timeout": {cfg: Config{ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second}, want: []string{"probe_timeout:", "shorter than probe_interval"}},
		"node name":     {cfg: Config{NodeName: "a b"}, want: []string{"node_name:", "white space"}},
		"several":       {cfg: Config{BindAddr: "x", SecretKey: []byte{1}}, want: []string{"bind_addr:", "secret_key:"}},
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
	c := Config{}.withDefaults()
	if c.BindAddr != ":7946" || c.VirtualNodes != 128 || c.RejoinInterval != 30*time.Second || c.NodeName == "" || c.Logger == nil {
		t.Errorf("defaults = %+v", c)
	}
	// Set fields are kept.
	c = Config{VirtualNodes: 7, ProbeInterval: time.Minute}.withDefaults()
	if c.VirtualNodes != 7 || c.ProbeInterval != time.Minute || c.ProbeTimeout != 500*time.Millisecond {
		t.Errorf("withDefaults overrode or missed fields: %+v", c)
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
