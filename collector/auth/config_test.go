package auth

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drover-ml/drover/shared/testenv"
)

// loadConfig decodes the auth: block of a collector config file the way
// the collector does (over the defaults, unknown fields rejected) and
// validates it.
func loadConfig(path string) (Config, error) {
	var doc struct {
		Auth Config `yaml:"auth"`
	}
	doc.Auth = DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return doc.Auth, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return doc.Auth, err
	}
	return doc.Auth, doc.Auth.Validate()
}

func TestBadConfigs(t *testing.T) {
	testenv.BadConfigs(t, "testdata/*.bad.yaml", func(path string) error {
		_, err := loadConfig(path)
		return err
	})
}

func TestConfigDefaultsAndOmittedKeys(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	p := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(p, []byte("auth:\n  tokens_file: /etc/drover/tokens.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.RefreshInterval != 5*time.Second || c.TokensFile != "/etc/drover/tokens.yaml" || c.Disabled {
		t.Errorf("loaded %+v, want the default refresh_interval 5s and the tokens_file", c)
	}
	err = Config{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "auth.refresh_interval: must be > 0") {
		t.Errorf("zero Config: err = %v", err)
	}
}
