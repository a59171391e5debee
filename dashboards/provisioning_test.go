package dashboards_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/collector/server"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/chembed"
)

// TestProvisioningMatchesMakeRun: Grafana's provisioned data source, with
// the variables of deploy/grafana/local.env, reaches the ClickHouse that
// `make run` starts (deploy/local/collector.yaml, read as the collector
// reads it): the embedded engine's HTTP port on loopback, over HTTP, as
// its user, in the collector's database; the password is the file the
// engine writes under the collector's data_dir. And every dashboard panel
// names that data source.
func TestProvisioningMatchesMakeRun(t *testing.T) {
	cfg, err := server.Load(filepath.Join("..", "deploy", "local", "collector.yaml"))
	if err != nil {
		t.Fatalf("make run's collector config: %v", err)
	}
	ch := cfg.ClickHouse
	if ch.DSN != store.Embedded || ch.Embedded.HTTPPort == 0 || ch.Embedded.TCPPort == 0 {
		t.Fatalf("make run's clickhouse = %+v: want the embedded engine on fixed ports (clickhouse.embedded.tcp_port, http_port)", ch)
	}

	env := readEnvFile(t, filepath.Join("..", "deploy", "grafana", "local.env"))
	provPath := filepath.Join("..", "deploy", "grafana", "provisioning", "datasources", "clickhouse.yaml")
	raw, err := os.ReadFile(provPath)
	if err != nil {
		t.Fatal(err)
	}
	// Grafana's expansion of ${VAR} and $VAR in provisioning files; the
	// password is the only value local.env leaves to the user.
	expanded := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)`).ReplaceAllFunc(stripComments(raw), func(m []byte) []byte {
		name := strings.Trim(string(m), "${}")
		v, ok := env[name]
		if !ok && name != "DROVER_CLICKHOUSE_PASSWORD" {
			t.Errorf("the data source reads $%s, which deploy/grafana/local.env does not set", name)
		}
		if name == "DROVER_CLICKHOUSE_PASSWORD" {
			return []byte("secret")
		}
		return []byte(v)
	})
	var f struct {
		Datasources []struct {
			Type     string `yaml:"type"`
			UID      string `yaml:"uid"`
			JSONData struct {
				Host            string `yaml:"host"`
				Port            string `yaml:"port"`
				Protocol        string `yaml:"protocol"`
				Username        string `yaml:"username"`
				DefaultDatabase string `yaml:"defaultDatabase"`
			} `yaml:"jsonData"`
			Secure map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(expanded, &f); err != nil {
		t.Fatalf("%s: %v", provPath, err)
	}
	if len(f.Datasources) != 1 {
		t.Fatalf("%d data sources, want 1", len(f.Datasources))
	}
	ds := f.Datasources[0]
	j := ds.JSONData
	if j.Protocol != "http" {
		t.Errorf("protocol %q, want http (a failed native login aborts the embedded engine)", j.Protocol)
	}
	if port, err := strconv.Atoi(j.Port); err != nil || port != ch.Embedded.HTTPPort {
		t.Errorf("port %q, want make run's clickhouse.embedded.http_port %d", j.Port, ch.Embedded.HTTPPort)
	}
	if j.Host != "127.0.0.1" {
		t.Errorf("host %q, want 127.0.0.1, the loopback address the embedded engine listens on", j.Host)
	}
	if j.DefaultDatabase != ch.Database {
		t.Errorf("defaultDatabase %q, want make run's clickhouse.database %q (the dashboards' queries name no database)", j.DefaultDatabase, ch.Database)
	}
	if j.Username != chembed.User || ds.Secure["password"] == "" {
		t.Errorf("logs in as %q with password %q, want %s and the engine's password", j.Username, ds.Secure["password"], chembed.User)
	}
	// Where the password is: <data_dir>/clickhouse/password of make run's
	// collector, named in both files.
	pwFile := filepath.ToSlash(filepath.Join(cfg.DataDir, "clickhouse", chembed.PasswordFileName))
	for _, p := range []string{provPath, filepath.Join("..", "deploy", "grafana", "local.env")} {
		if b, _ := os.ReadFile(p); !bytes.Contains(b, []byte("DROVER_CLICKHOUSE_PASSWORD=$(cat "+pwFile+")")) {
			t.Errorf("%s does not say DROVER_CLICKHOUSE_PASSWORD=$(cat %s)", p, pwFile)
		}
	}

	for _, d := range readDashboards(t) {
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				if q.Datasource.UID != ds.UID || q.Datasource.Type != ds.Type {
					t.Errorf("%s/%s: data source %+v, want the provisioned %s (%s)", d.UID, p.Title, q.Datasource, ds.UID, ds.Type)
				}
			}
		}
	}
}

// readEnvFile reads KEY=VALUE lines (docker's --env-file format; # starts
// a comment line).
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// stripComments drops YAML comment lines (they show variables as examples).
func stripComments(b []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
