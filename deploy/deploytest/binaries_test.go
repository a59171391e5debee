package deploytest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository's root, from this package's directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// deployPath returns a path under deploy/.
func deployPath(elem ...string) string {
	return filepath.Join(append([]string{repoRoot, "deploy"}, elem...)...)
}

// binary is one of Drover's commands as its --help describes it.
type binary struct {
	// name is the command's file name (drover-agent).
	name string
	// pkg is its main package, relative to the repository root.
	pkg string
	// sub is the subcommand whose flags the files use ("serve"), or "".
	sub string
	// flags maps each flag's name to whether it takes a value.
	flags map[string]bool
	// defaults are the defaults --help prints, by flag name.
	defaults map[string]string
}

var binaries = map[string]*binary{
	"drover-agent":     {name: "drover-agent", pkg: "./agent/cmd/drover-agent"},
	"drover-collector": {name: "drover-collector", pkg: "./collector/cmd/drover-collector", sub: "serve"},
	"drover-deps":      {name: "drover-deps", pkg: "./shared/cmd/drover-deps"},
}

// bins runs each binary's --help once per test binary, built without
// -race (go run; the comparison needs only the help).
var bins = &builder{once: map[string]*sync.Once{}, errs: map[string]error{}}

type builder struct {
	mu   sync.Mutex
	once map[string]*sync.Once
	errs map[string]error
}

// get returns the binary named name with its flags read from --help; the
// test fails when it cannot be built or its help cannot be read.
func (b *builder) get(t testing.TB, name string) *binary {
	t.Helper()
	bin, ok := binaries[name]
	if !ok {
		t.Fatalf("the files run %q, which is not one of Drover's binaries", name)
	}
	if err := b.prepare(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// prepare builds bin and reads its help, once; later calls return the
// first call's error.
func (b *builder) prepare(bin *binary) error {
	b.mu.Lock()
	once, ok := b.once[bin.name]
	if !ok {
		once = new(sync.Once)
		b.once[bin.name] = once
	}
	b.mu.Unlock()
	once.Do(func() {
		err := b.build(bin)
		b.mu.Lock()
		b.errs[bin.name] = err
		b.mu.Unlock()
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errs[bin.name]
}

// prepareAll builds every binary at once (the links run side by side);
// errors are reported by the tests that need the binary.
func (b *builder) prepareAll() {
	var wg sync.WaitGroup
	for _, bin := range binaries {
		wg.Go(func() { _ = b.prepare(bin) })
	}
	wg.Wait()
}

func (b *builder) build(bin *binary) error {
	// go run caches the linked executable in the build cache, so only the
	// first run after a change of the binary's code links it.
	args := []string{"run", bin.pkg}
	if bin.sub != "" {
		args = append(args, bin.sub)
	}
	args = append(args, "--help")
	var help, stderr bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	cmd.Stdout, cmd.Stderr = &help, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s%s", strings.Join(args, " "), err, help.String(), stderr.String())
	}
	// The flag package writes its help to stderr; go run's own messages
	// go there too, but only on failure.
	help.Write(stderr.Bytes())
	flags, defaults, err := parseHelp(help.String())
	if err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	bin.flags, bin.defaults = flags, defaults
	return nil
}

var (
	// A flag line of Go's flag package: "  -name" (a bool) or "  -name type".
	helpFlagRE = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: ([a-z]+))?$`)
	// A default, as the flag package prints it (default ":8080") or as a
	// usage text says it (default :7070).
	helpDefaultRE = regexp.MustCompile(`\(default "?([^")]*)"?\)`)
)

// parseHelp reads the flags of a Go flag.FlagSet's PrintDefaults output.
func parseHelp(help string) (flags map[string]bool, defaults map[string]string, err error) {
	flags, defaults = map[string]bool{}, map[string]string{}
	var last string
	for _, line := range strings.Split(help, "\n") {
		if m := helpFlagRE.FindStringSubmatch(line); m != nil {
			last = m[1]
			flags[last] = m[2] != ""
			continue
		}
		if last != "" {
			if m := helpDefaultRE.FindStringSubmatch(line); m != nil {
				defaults[last] = m[1]
			}
		}
	}
	if len(flags) == 0 {
		return nil, nil, fmt.Errorf("no flags in the help text:\n%s", help)
	}
	return flags, defaults, nil
}

// invocation is a binary with the arguments a file gives it.
type invocation struct {
	bin *binary
	// values maps each flag given to its values, in order.
	values map[string][]string
}

// last returns the value of a flag the way the flag package keeps it: the
// last one given, else --help's default.
func (in invocation) last(flag string) string {
	if v := in.values[flag]; len(v) > 0 {
		return v[len(v)-1]
	}
	return in.bin.defaults[flag]
}

// parseArgs checks argv (the binary's path first) against the binary's
// flags: every flag must exist, a flag that takes a value must have one,
// and nothing may follow the flags.
func parseArgs(t testing.TB, where string, argv []string) invocation {
	t.Helper()
	if len(argv) == 0 {
		t.Fatalf("%s: no command", where)
	}
	bin := bins.get(t, filepath.Base(argv[0]))
	args := argv[1:]
	if bin.sub != "" {
		if len(args) == 0 || args[0] != bin.sub {
			t.Fatalf("%s: %s needs the subcommand %q first, got %q", where, bin.name, bin.sub, args)
		}
		args = args[1:]
	}
	in := invocation{bin: bin, values: map[string][]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			t.Errorf("%s: %s: unexpected argument %q (the flag package stops at the first non-flag)", where, bin.name, a)
			return in
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := bin.flags[name]
		if !ok {
			t.Errorf("%s: %s has no flag --%s (its --help lists %s)", where, bin.name, name, strings.Join(sortedKeys(bin.flags), ", "))
			continue
		}
		if takesValue && !hasValue {
			if i+1 >= len(args) {
				t.Errorf("%s: %s --%s needs a value", where, bin.name, name)
				continue
			}
			i++
			value = args[i]
		}
		if !takesValue {
			if hasValue && value != "true" && value != "false" {
				t.Errorf("%s: %s --%s is a bool flag, got %q", where, bin.name, name, value)
			}
			if !hasValue {
				value = "true"
			}
		}
		in.values[name] = append(in.values[name], value)
	}
	return in
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// listenPort returns the port of an address flag's value (":8080",
// "$(POD_IP):7946", "127.0.0.1:8082").
func listenPort(t testing.TB, where, flag, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: --%s=%q: %v", where, flag, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: --%s=%q: port: %v", where, flag, addr, err)
	}
	return n
}

// loopbackOnly reports whether an address flag's value binds loopback only.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listener is one port a binary listens on, from its address flags.
type listener struct {
	flag     string
	port     int
	protocol string // tcp or udp
	loopback bool
}

// addressFlags are the flags of each binary that open a listener (the
// gossip address is TCP and UDP), and the protocols on each.
var addressFlags = map[string]map[string][]string{
	"drover-agent": {
		"http-addr":    {"tcp"},
		"grpc-addr":    {"tcp"},
		"control-addr": {"tcp"},
	},
	"drover-collector": {
		"otlp-grpc-addr": {"tcp"},
		"otlp-http-addr": {"tcp"},
		"admin-addr":     {"tcp"},
		"gossip-addr":    {"tcp", "udp"},
	},
}

// listeners returns what an invocation listens on: each address flag's
// last value, else its default. debug-addr listens only when given.
func (in invocation) listeners(t testing.TB, where string) []listener {
	t.Helper()
	var ls []listener
	for _, flag := range sortedKeys(addressFlags[in.bin.name]) {
		if _, ok := in.bin.flags[flag]; !ok {
			t.Fatalf("%s: %s --help has no --%s any more: update addressFlags", where, in.bin.name, flag)
		}
		addr := in.last(flag)
		if addr == "" {
			t.Fatalf("%s: %s --%s has no value and --help gives no default", where, in.bin.name, flag)
		}
		for _, proto := range addressFlags[in.bin.name][flag] {
			ls = append(ls, listener{flag: flag, port: listenPort(t, where, flag, addr), protocol: proto, loopback: loopbackOnly(addr)})
		}
	}
	return ls
}

// port returns the port of one address flag.
func (in invocation) port(t testing.TB, where, flag string) int {
	t.Helper()
	return listenPort(t, where, flag, in.last(flag))
}

// TestHelpParses checks the help parser on each binary, so that a change in
// the help's format fails here and not as a confusing "no flag" elsewhere.
func TestHelpParses(t *testing.T) {
	want := map[string][]string{
		"drover-agent":     {"model-dir", "data-dir", "config", "http-addr", "grpc-addr", "control-addr", "collector", "token-file", "label"},
		"drover-collector": {"config", "clickhouse", "data-dir", "otlp-grpc-addr", "otlp-http-addr", "admin-addr", "gossip-addr", "node-name", "join", "gossip-key-file", "no-gossip"},
		"drover-deps":      {"only"},
	}
	for name, flags := range want {
		bin := bins.get(t, name)
		for _, f := range flags {
			if _, ok := bin.flags[f]; !ok {
				t.Errorf("%s --help: no --%s among %v", name, f, sortedKeys(bin.flags))
			}
		}
	}
	agent := bins.get(t, "drover-agent")
	if agent.flags["version"] || !agent.flags["http-addr"] {
		t.Errorf("drover-agent: --version should be a bool and --http-addr take a value: %v", agent.flags)
	}
	if got := agent.defaults["http-addr"]; got != ":8080" {
		t.Errorf("drover-agent --http-addr default = %q, want :8080", got)
	}
	if got := bins.get(t, "drover-collector").defaults["admin-addr"]; got != ":7070" {
		t.Errorf("drover-collector --admin-addr default = %q, want :7070", got)
	}
}
