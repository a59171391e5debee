package deploytest

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/shared/tokens"
)

const composePassword = "compose-test-password"

// loadCompose loads deploy/compose/compose.yaml with compose-go, as
// `docker compose` does (schema validation, interpolation, normalization).
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	dir := deployPath("compose")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv([]string{"CLICKHOUSE_PASSWORD=" + composePassword}),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// secretPath returns where a service's secret is mounted.
func secretPath(s types.ServiceSecretConfig) string {
	if strings.HasPrefix(s.Target, "/") {
		return s.Target
	}
	if s.Target != "" {
		return "/run/secrets/" + s.Target
	}
	return "/run/secrets/" + s.Source
}

// mounted maps every file a service gets from configs and secrets to the
// project's file it comes from.
func mounted(p *types.Project, svc types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for _, c := range svc.Configs {
		m[c.Target] = p.Configs[c.Source].File
	}
	for _, s := range svc.Secrets {
		m[secretPath(types.ServiceSecretConfig(s))] = p.Secrets[s.Source].File
	}
	return m
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	want := []string{"agent-1", "agent-2", "clickhouse", "collector-1", "collector-2", "collector-3", "grafana"}
	if got := sortedKeys(p.Services); !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	if img := p.Services["clickhouse"].Image; !strings.HasPrefix(img, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse: image %q, want the official clickhouse/clickhouse-server", img)
	}

	// Each Drover service: the image's entrypoint with the service's
	// command, checked against the binary's flags; published ports on
	// what it listens on.
	invs := map[string]invocation{}
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		if svc.Build == nil {
			continue
		}
		where := "compose.yaml " + name
		if svc.Build.Context != repoRoot {
			t.Errorf("%s: build context %s, want the repository root", where, svc.Build.Context)
		}
		var img image
		for bin, file := range dockerfiles {
			if svc.Build.Dockerfile == "deploy/docker/"+file {
				img = loadImage(t, file)
				if !strings.HasPrefix(svc.Image, bin+":") {
					t.Errorf("%s: image %q, want %s:<tag>", where, svc.Image, bin)
				}
			}
		}
		if img.file == "" {
			t.Fatalf("%s: builds %s, not one of deploy/docker's Dockerfiles", where, svc.Build.Dockerfile)
		}
		if len(svc.Entrypoint) > 0 {
			t.Errorf("%s: overrides the image's entrypoint", where)
		}
		in := parseArgs(t, where, append(slices.Clone(img.entrypoint), svc.Command...))
		invs[name] = in
		ports := map[int]bool{}
		for _, l := range in.listeners(t, where) {
			if !l.loopback {
				ports[l.port] = true
			}
		}
		for _, pc := range svc.Ports {
			if !ports[int(pc.Target)] {
				t.Errorf("%s: publishes %d, where %s does not listen", where, pc.Target, in.bin.name)
			}
		}
		files := mounted(p, svc)
		for _, flag := range []string{"config", "token-file", "gossip-key-file"} {
			for _, v := range in.values[flag] {
				if files[v] == "" {
					t.Errorf("%s: --%s=%s is not a config or secret of the service", where, flag, v)
				}
			}
		}
	}

	collectors := []string{"collector-1", "collector-2", "collector-3"}
	var names, keys []string
	for _, c := range collectors {
		svc, in, where := p.Services[c], invs[c], "compose.yaml "+c
		if in.bin == nil || in.bin.name != "drover-collector" {
			t.Fatalf("%s: does not run drover-collector", where)
		}
		names = append(names, in.last("node-name"))
		keys = append(keys, mounted(p, svc)[in.last("gossip-key-file")])
		// Every node joins every node, on the gossip port they listen on.
		var join []string
		for _, peer := range strings.Split(in.last("join"), ",") {
			host, port, err := net.SplitHostPort(peer)
			if err != nil {
				t.Fatalf("%s: --join %q: %v", where, peer, err)
			}
			if port != strconv.Itoa(invs[host].port(t, where, "gossip-addr")) {
				t.Errorf("%s: --join %s, but %s gossips on %d", where, peer, host, invs[host].port(t, where, "gossip-addr"))
			}
			join = append(join, host)
		}
		if !slices.Equal(join, collectors) {
			t.Errorf("%s: --join %v, want %v", where, join, collectors)
		}
		// ClickHouse: the server's native port, the password of its env.
		dsn, err := url.Parse(in.last("clickhouse"))
		if err != nil || dsn.Scheme != "clickhouse" {
			t.Fatalf("%s: --clickhouse %q: want a clickhouse:// DSN (%v)", where, in.last("clickhouse"), err)
		}
		if pw, _ := dsn.User.Password(); dsn.Hostname() != "clickhouse" || dsn.Port() != "9000" || dsn.User.Username() != "drover" || pw != composePassword {
			t.Errorf("%s: --clickhouse %s: want drover:$CLICKHOUSE_PASSWORD@clickhouse:9000", where, dsn.Redacted())
		}
		if env := p.Services["clickhouse"].Environment; env["CLICKHOUSE_USER"] == nil || *env["CLICKHOUSE_USER"] != "drover" ||
			env["CLICKHOUSE_PASSWORD"] == nil || *env["CLICKHOUSE_PASSWORD"] != composePassword {
			t.Errorf("clickhouse: CLICKHOUSE_USER/CLICKHOUSE_PASSWORD do not match the collectors' DSN")
		}
		if dep, ok := svc.DependsOn["clickhouse"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: should wait for a healthy clickhouse", where)
		}
		// The shared configuration: the strict parser accepts it, its
		// tokens file is a secret of the service, its registry is one
		// volume every collector mounts at the same path.
		files := mounted(p, svc)
		b, err := os.ReadFile(files[in.last("config")])
		if err != nil {
			t.Fatal(err)
		}
		cfg := parseCollectorConfig(t, where+" "+in.last("config"), b)
		if cfg.Auth.TokensFile == "" || files[cfg.Auth.TokensFile] == "" {
			t.Errorf("%s: auth.tokens_file %q is not a secret of the service", where, cfg.Auth.TokensFile)
		}
		blob, err := url.Parse(cfg.Registry.BlobURL)
		if err != nil || blob.Scheme != "file" || !cfg.Registry.SharedPath {
			t.Fatalf("%s: registry %q shared_path=%v: want a shared file:// store", where, cfg.Registry.BlobURL, cfg.Registry.SharedPath)
		}
		var shared bool
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == "registry" && (v.Target == blob.Path || strings.HasPrefix(blob.Path, v.Target+"/")) {
				shared = true
			}
		}
		if !shared {
			t.Errorf("%s: the registry volume is not mounted at %s", where, blob.Path)
		}
		if _, ok := svc.Networks["default"]; !ok || !slices.Contains(svc.Networks["default"].Aliases, "otlp") {
			t.Errorf("%s: not reachable as otlp", where)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(collectors) {
		t.Errorf("collectors' --node-name %v: want one name each", names)
	}
	if keys = slices.Compact(keys); len(keys) != 1 || keys[0] == "" {
		t.Errorf("collectors' gossip keys %v: want one shared key file", keys)
	}

	for _, a := range []string{"agent-1", "agent-2"} {
		svc, in, where := p.Services[a], invs[a], "compose.yaml "+a
		if in.bin == nil || in.bin.name != "drover-agent" {
			t.Fatalf("%s: does not run drover-agent", where)
		}
		urls := strings.Split(in.last("collector"), ",")
		var hosts []string
		for _, s := range urls {
			u, err := url.Parse(s)
			if err != nil || u.Scheme != "http" {
				t.Fatalf("%s: --collector %q: %v", where, s, err)
			}
			c, ok := invs[u.Hostname()]
			if !ok || c.bin.name != "drover-collector" {
				t.Errorf("%s: --collector %s is not a collector of the file", where, s)
				continue
			}
			if u.Port() != strconv.Itoa(c.port(t, where, "admin-addr")) {
				t.Errorf("%s: --collector %s, but its admin API is on %d", where, s, c.port(t, where, "admin-addr"))
			}
			hosts = append(hosts, u.Hostname())
		}
		if !slices.Equal(slices.Sorted(slices.Values(hosts)), collectors) {
			t.Errorf("%s: follows %v, want all of %v", where, hosts, collectors)
		}
		files := mounted(p, svc)
		b, err := os.ReadFile(files[in.last("config")])
		if err != nil {
			t.Fatal(err)
		}
		cfg := parseAgentConfig(t, where+" "+in.last("config"), b)
		tel := cfg.Telemetry
		host, port, err := net.SplitHostPort(tel.Endpoint)
		if err != nil {
			t.Fatalf("%s: telemetry.endpoint %q: %v", where, tel.Endpoint, err)
		}
		if host != "otlp" || tel.Protocol != "grpc" || port != strconv.Itoa(invs["collector-1"].port(t, where, "otlp-grpc-addr")) {
			t.Errorf("%s: telemetry %s %s: want grpc to the collectors' OTLP gRPC port (alias otlp)", where, tel.Protocol, tel.Endpoint)
		}
		if files[tel.TokenFile] == "" || files[tel.TokenFile] != files[in.last("token-file")] {
			t.Errorf("%s: telemetry.token_file %q should be the --token-file secret", where, tel.TokenFile)
		}
	}

	// Grafana: Drover's provisioning and dashboards, mounted where the
	// provisioning looks, with every variable its data source reads.
	g := p.Services["grafana"]
	binds := map[string]string{}
	for _, v := range g.Volumes {
		if v.Type == types.VolumeTypeBind {
			binds[v.Target] = v.Source
		}
	}
	prov := binds["/etc/grafana/provisioning"]
	if prov != deployPath("grafana", "provisioning") {
		t.Errorf("grafana: /etc/grafana/provisioning from %q, want deploy/grafana/provisioning", prov)
	}
	provider, err := os.ReadFile(deployPath("grafana", "provisioning", "dashboards", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(provider, &providers); err != nil || len(providers.Providers) == 0 {
		t.Fatalf("provisioning/dashboards/drover.yaml: %v", err)
	}
	dashDir := providers.Providers[0].Options.Path
	if binds[dashDir] != filepath.Join(repoRoot, "dashboards") {
		t.Errorf("grafana: the provisioning reads dashboards from %s, where the compose file mounts %q, not dashboards/", dashDir, binds[dashDir])
	}
	ds, err := os.ReadFile(deployPath("grafana", "provisioning", "datasources", "clickhouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range envRefs(string(ds)) {
		if g.Environment[v] == nil {
			t.Errorf("grafana: the data source reads ${%s}, which the service does not set", v)
		}
	}
	if h := g.Environment["DROVER_CLICKHOUSE_HOST"]; h == nil || p.Services[*h].Image != p.Services["clickhouse"].Image {
		t.Errorf("grafana: DROVER_CLICKHOUSE_HOST should name the clickhouse service")
	}
	if pw := g.Environment["DROVER_CLICKHOUSE_PASSWORD"]; pw == nil || *pw != composePassword {
		t.Errorf("grafana: DROVER_CLICKHOUSE_PASSWORD should be $CLICKHOUSE_PASSWORD")
	}
}

// envRefs returns the ${VAR} references of a provisioning file, comments
// left out.
func envRefs(s string) []string {
	var refs []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for {
			i := strings.Index(line, "${")
			if i < 0 {
				break
			}
			j := strings.Index(line[i:], "}")
			if j < 0 {
				break
			}
			refs = append(refs, line[i+2:i+j])
			line = line[i+j:]
		}
	}
	return refs
}

// TestComposeSecrets runs make-secrets.sh into a temporary folder, twice,
// and checks what the collectors and agents read: the tokens file parses
// and lists the hashes of the token files, the gossip key is a key.
func TestComposeSecrets(t *testing.T) {
	dir := t.TempDir()
	run := func() {
		cmd := exec.Command("sh", deployPath("compose", "make-secrets.sh"), dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make-secrets.sh: %v\n%s", err, out)
		}
	}
	run()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	admin, agent := read("secrets/admin.token"), read("secrets/agent.token")
	entries, err := tokens.ParseFile([]byte(read("secrets/tokens.yaml")))
	if err != nil {
		t.Fatalf("tokens.yaml: %v", err)
	}
	roles := map[string]string{}
	for _, e := range entries {
		roles[e.SHA256] = string(e.Role)
	}
	for tok, role := range map[string]string{admin: "admin", agent: "agent"} {
		tok = strings.TrimSpace(tok)
		if _, err := tokens.ParseBearer("Bearer " + tok); err != nil || !strings.HasPrefix(tok, "drover_") || len(tok) != 50 {
			t.Errorf("%s token %q: want drover_ and 43 base64url characters (%v)", role, tok, err)
		}
		if got := roles[tokens.Hash(tok)]; got != role {
			t.Errorf("tokens.yaml: the %s token's hash has role %q", role, got)
		}
	}
	key, err := ring.ReadSecretKeyFile(filepath.Join(dir, "secrets", "gossip.key"))
	if err != nil || len(key) != 32 {
		t.Errorf("gossip.key: %d bytes, %v", len(key), err)
	}
	env := read(".env")
	pw, ok := strings.CutPrefix(strings.TrimSpace(env), "CLICKHOUSE_PASSWORD=")
	if !ok || len(pw) != 32 || url.UserPassword("drover", pw).String() != "drover:"+pw {
		t.Errorf(".env %q: want CLICKHOUSE_PASSWORD= and 32 hex digits (safe in a DSN)", env)
	}
	if st, err := os.Stat(filepath.Join(dir, ".env")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf(".env: mode %v, want 0600 (%v)", st.Mode().Perm(), err)
	}
	// A second run keeps what exists.
	run()
	if read("secrets/admin.token") != admin || read("secrets/agent.token") != agent || read(".env") != env {
		t.Error("a second run of make-secrets.sh changed the secrets")
	}
}
