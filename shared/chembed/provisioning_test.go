package chembed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/shared/chembed"
)

// TestGrafanaProvisioningKnowsThePassword: the Grafana data source that
// deploy/ provisions logs in as the engine's user with a password (the
// engine has no passwordless user that can read a table) over HTTP (a
// failed native login aborts the chdb engine), and says where the password
// is.
func TestGrafanaProvisioningKnowsThePassword(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "grafana", "provisioning", "datasources", "clickhouse.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Datasources []struct {
			Type     string            `yaml:"type"`
			JSONData map[string]any    `yaml:"jsonData"`
			Secure   map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Datasources) != 1 {
		t.Fatalf("%d data sources", len(f.Datasources))
	}
	ds := f.Datasources[0]
	if ds.JSONData["protocol"] != "http" || ds.JSONData["username"] == nil || ds.Secure["password"] == "" {
		t.Errorf("data source does not log in with a user and password over http: %+v", ds)
	}
	text := string(b)
	for _, want := range []string{"DROVER_CLICKHOUSE_USER=" + chembed.User, "clickhouse/" + chembed.PasswordFileName} {
		if !strings.Contains(text, want) {
			t.Errorf("%s does not say %q", path, want)
		}
	}
}
