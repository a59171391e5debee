package ring

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is the gossip port (TCP and UDP) used when an address has none.
const DefaultPort = 7946

// srvPrefix marks a Join entry that names a DNS SRV record.
const srvPrefix = "dnssrv+"

// Config configures a Ring. Start from DefaultConfig (or LoopbackConfig)
// and change what differs: every field is taken literally, and Validate
// rejects the values that make no sense (a zero interval, an empty node
// name). New reads it once: changing it needs a restart.
type Config struct {
	// NodeName is this node's name in the cluster; it must be unique among
	// the members. Default: the hostname.
	NodeName string `yaml:"node_name"`
	// BindAddr is the host:port that gossip listens on, TCP and UDP. The
	// host is an IP or empty (all IPv4 addresses); port 0 picks a free one.
	// Default ":7946".
	BindAddr string `yaml:"bind_addr"`
	// AdvertiseAddr is the IP or IP:port that other members use to reach
	// this node. Default: the bind IP, or a private IP of this host when
	// bound to all addresses.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// Join lists peers: "host:port", "host" (port 7946), or "dnssrv+name"
	// (a DNS SRV record). Every A and AAAA record of a host is a peer, so a
	// Kubernetes headless service name reaches every pod. Names are
	// resolved again on each attempt.
	Join []string `yaml:"join"`
	// RejoinInterval is how often the Join peers that are not alive members
	// are joined again (also how often a failed first join is retried).
	// Default 30s.
	RejoinInterval time.Duration `yaml:"rejoin_interval"`
	// SecretKey, when set, encrypts and authenticates gossip (AES-GCM); it
	// is 16, 24 or 32 bytes and must be the same on every member. Nodes
	// with another key, or none, cannot join.
	SecretKey []byte `yaml:"-"`
	// VirtualNodes is the number of points this node puts on the ring.
	// Each node advertises its own count, so nodes agree on owners even if
	// they are configured differently. Default 128; at most 4096.
	VirtualNodes int `yaml:"virtual_nodes"`
	// LeaveTimeout bounds the graceful leave when Run stops. Default 5s.
	LeaveTimeout time.Duration `yaml:"leave_timeout"`

	// Failure detection and gossip timing (memberlist's LAN defaults).
	// With the defaults a node that dies without leaving is declared dead,
	// and its models move, in about 5-8 s.

	// ProbeInterval is how often each node probes another one. Default 1s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// ProbeTimeout is how long a probe waits for a direct ack; it must be
	// shorter than ProbeInterval. Default 500ms.
	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	// SuspicionMult scales how long a suspect is given to refute before it
	// is declared dead (SuspicionMult × ProbeInterval × max(1, log10(N))).
	// Default 4.
	SuspicionMult int `yaml:"suspicion_mult"`
	// GossipInterval is how often gossip messages are sent. Default 200ms.
	GossipInterval time.Duration `yaml:"gossip_interval"`
	// PushPullInterval is how often a full state sync with one random member
	// runs. It is also how long dead and left members are remembered (and
	// gossiped to, and listed by Members). Default 30s.
	PushPullInterval time.Duration `yaml:"push_pull_interval"`
	// DeadNodeReclaimTime is how long a dead member's name stays bound to
	// its old address; after it, a restarted node with the same name and a
	// new address (a rescheduled pod) is accepted. 0 means never (the name
	// stays bound until the dead member is forgotten). Default 10s.
	DeadNodeReclaimTime time.Duration `yaml:"dead_node_reclaim_time"`

	// AdminAddr is this node's admin API address (host:port), gossiped in
	// its metadata so that other members can forward to the owner of a
	// model (AdminURL). An empty or unspecified host (":7070",
	// "0.0.0.0:7070") stands for the IP this node advertises for gossip.
	// At most 255 bytes. Default: none (AdminURL reports none).
	AdminAddr string `yaml:"-"`

	// Logger receives the ring's logs and memberlist's (at debug level,
	// except memberlist's warnings and errors); nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig returns the defaults: the hostname as node name, ":7946",
// rejoin every 30s, 128 virtual nodes and memberlist's LAN timings.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:            host,
		BindAddr:            fmt.Sprintf(":%d", DefaultPort),
		RejoinInterval:      30 * time.Second,
		VirtualNodes:        128,
		LeaveTimeout:        5 * time.Second,
		ProbeInterval:       time.Second,
		ProbeTimeout:        500 * time.Millisecond,
		SuspicionMult:       4,
		GossipInterval:      200 * time.Millisecond,
		PushPullInterval:    30 * time.Second,
		DeadNodeReclaimTime: 10 * time.Second,
	}
}

// LoopbackConfig returns a config for a test cluster on 127.0.0.1: a free
// port and timings faster than the defaults (a killed node is declared
// dead in about 4 s), with enough slack in the probe timeout and the
// suspicion period that a live node stalled by -race on a loaded machine
// is not. Never use it across a real network.
func LoopbackConfig(nodeName string) Config {
	c := DefaultConfig()
	c.NodeName = nodeName
	c.BindAddr = "127.0.0.1:0"
	c.RejoinInterval = 300 * time.Millisecond
	c.LeaveTimeout = 2 * time.Second
	c.ProbeInterval = 500 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.SuspicionMult = 6 // 3 s from suspect to dead in a cluster of 3
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.DeadNodeReclaimTime = 500 * time.Millisecond
	return c
}

// withDefaults fills the one field that is a dependency, not a setting:
// a nil Logger becomes slog.Default(). Settings are never defaulted here;
// they come from DefaultConfig.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every invalid field, joined, each prefixed with its yaml
// name ("join[1]: ..."). Zero values are taken literally: a zero interval or
// an empty bind address is an error, not the default.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if err := CheckNodeName(c.NodeName); err != nil {
		bad("node_name", "%v", err)
	}
	if err := CheckBindAddr(c.BindAddr); err != nil {
		bad("bind_addr", "%v", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitAdvertiseAddr(c.AdvertiseAddr); err != nil {
			bad("advertise_addr", "%v", err)
		}
	}
	if c.AdminAddr != "" {
		if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil || port == "" || len(c.AdminAddr) > 255 {
			bad("admin_addr", "want host:port of at most 255 bytes, got %q", c.AdminAddr)
		}
	}
	for i, j := range c.Join {
		if err := CheckJoinEntry(j); err != nil {
			bad(fmt.Sprintf("join[%d]", i), "%v", err)
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		bad("secret_key", "must be 16, 24 or 32 bytes (AES-128, -192 or -256), got %d", len(c.SecretKey))
	}
	if c.VirtualNodes < 1 || c.VirtualNodes > MaxVirtualNodes {
		bad("virtual_nodes", "must be between 1 and %d, got %d", MaxVirtualNodes, c.VirtualNodes)
	}
	if c.SuspicionMult < 1 {
		bad("suspicion_mult", "must be >= 1, got %d", c.SuspicionMult)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"rejoin_interval", c.RejoinInterval},
		{"leave_timeout", c.LeaveTimeout},
		{"probe_interval", c.ProbeInterval},
		{"probe_timeout", c.ProbeTimeout},
		{"gossip_interval", c.GossipInterval},
		{"push_pull_interval", c.PushPullInterval},
	} {
		if d.v <= 0 {
			bad(d.name, "must be > 0, got %s", d.v)
		}
	}
	if c.DeadNodeReclaimTime < 0 {
		bad("dead_node_reclaim_time", "must not be negative, got %s", c.DeadNodeReclaimTime)
	}
	if c.ProbeTimeout > 0 && c.ProbeInterval > 0 && c.ProbeTimeout >= c.ProbeInterval {
		bad("probe_timeout", "must be shorter than probe_interval (%s), got %s", c.ProbeInterval, c.ProbeTimeout)
	}
	return errors.Join(errs...)
}

// CheckNodeName reports whether name can name a member: not empty, no
// white space.
func CheckNodeName(name string) error {
	if name == "" {
		return errors.New("is required (the hostname is unknown: set a node name)")
	}
	if strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("%q contains white space", name)
	}
	return nil
}

// CheckBindAddr reports whether addr can be a gossip bind address:
// host:port with an IP (or empty) host and a port from 0 to 65535.
func CheckBindAddr(addr string) error {
	_, _, err := splitBindAddr(addr)
	return err
}

// CheckJoinEntry checks one Join entry's syntax ("host:port", "host" or
// "dnssrv+NAME"); it does not resolve it.
func CheckJoinEntry(entry string) error {
	if name, ok := strings.CutPrefix(entry, srvPrefix); ok {
		if name == "" || strings.ContainsAny(name, ":/ ") {
			return fmt.Errorf("%q: want %sNAME, a DNS SRV record name", entry, srvPrefix)
		}
		return nil
	}
	_, _, err := splitJoinEntry(entry)
	return err
}

// ReadSecretKeyFile reads a gossip key file written as ParseSecretKey
// reads it (base64, surrounding white space ignored).
func ReadSecretKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseSecretKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// CheckAdvertiseAddr checks an advertise address: an IP or IP:port.
func CheckAdvertiseAddr(addr string) error {
	_, _, err := splitAdvertiseAddr(addr)
	return err
}

// MaxVirtualNodes bounds virtual_nodes, and the count a member advertises:
// a larger one is taken as this many, so no member can claim more than its
// share by gossiping a big number.
const MaxVirtualNodes = 4096

// LoadOrCreateSecretKeyFile reads the gossip key at path, or, when the file
// does not exist, writes a new random 32-byte key there (base64, mode
// 0600, written to a temporary file and renamed) and returns it with
// created true.
func LoadOrCreateSecretKeyFile(path string) (key []byte, created bool, err error) {
	key, err = ReadSecretKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("write gossip key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, false, fmt.Errorf("write gossip key: %w", err)
	}
	return key, true, nil
}

// ParseSecretKey decodes a gossip key written in base64 (standard or URL
// alphabet, padding optional; surrounding white space is ignored), as
// `openssl rand -base64 32` prints it. The result is 16, 24 or 32 bytes.
func ParseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, "=")
	var key []byte
	var err error
	if strings.ContainsAny(s, "-_") {
		key, err = base64.RawURLEncoding.DecodeString(s)
	} else {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("gossip key must decode to 16, 24 or 32 bytes, got %d", len(key))
}

// splitBindAddr parses "host:port" where host is empty or an IP.
func splitBindAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want host:port, e.g. :7946 or 10.0.0.5:7946", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	} else if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q: host must be an IP address (or empty for all)", addr)
	}
	return host, port, nil
}

// splitAdvertiseAddr parses "ip" or "ip:port"; port is 0 when absent.
func splitAdvertiseAddr(addr string) (string, int, error) {
	host, port := addr, 0
	if h, p, err := net.SplitHostPort(addr); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("%q: port must be a number from 1 to 65535", addr)
		}
		host, port = h, n
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", 0, fmt.Errorf("%q: want an IP address or IP:port", addr)
	}
	if ip.IsUnspecified() {
		return "", 0, fmt.Errorf("%q: an unspecified address cannot be reached by peers", addr)
	}
	return host, port, nil
}

// splitJoinEntry parses "host:port" or "host" (DefaultPort).
func splitJoinEntry(entry string) (string, int, error) {
	if entry == "" || strings.ContainsAny(entry, "/ \t") {
		return "", 0, fmt.Errorf("%q: want host:port, host, or %sNAME", entry, srvPrefix)
	}
	host, portStr, err := net.SplitHostPort(entry)
	if err != nil {
		// No port: a bare host name or IP (an IPv6 literal needs brackets
		// only when it has a port).
		if strings.Count(entry, ":") == 1 {
			return "", 0, fmt.Errorf("%q: want host:port, host, or %sNAME", entry, srvPrefix)
		}
		return strings.Trim(entry, "[]"), DefaultPort, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be a number from 1 to 65535", entry)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: host is empty", entry)
	}
	return host, port, nil
}
