package auth

import (
	"errors"
	"fmt"
	"time"
)

// Config is the collector configuration's auth: block.
//
//	auth:
//	  disabled: false          # true runs every listener without tokens (logged as a warning)
//	  tokens_file: ""          # a YAML list of {name, role, sha256}, added to the tokens in ClickHouse
//	  refresh_interval: 5s     # how often tokens are re-read from ClickHouse and tokens_file
type Config struct {
	// Disabled turns authentication off: every request is let through as
	// the admin "auth-disabled". It is the only way to run without tokens.
	Disabled bool `yaml:"disabled"`
	// TokensFile, when set, names a YAML file of tokens (by sha256) that an
	// operator manages; they are accepted together with the tokens in
	// ClickHouse, cannot be revoked through the API, and are re-read when
	// the file changes.
	TokensFile string `yaml:"tokens_file"`
	// RefreshInterval is how often the tokens are re-read from ClickHouse
	// (and tokens_file checked for changes): a token created or revoked on
	// another collector takes effect here within it.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
}

// DefaultConfig returns the defaults: authentication on, no tokens_file,
// refresh every 5 s.
func DefaultConfig() Config {
	return Config{RefreshInterval: 5 * time.Second}
}

// Validate reports every invalid field, joined, each with its path from the
// root of the collector configuration ("auth.refresh_interval: ..."), so
// the caller adds its errors without a prefix.
func (c Config) Validate() error {
	var errs []error
	if c.RefreshInterval <= 0 {
		errs = append(errs, fmt.Errorf("auth.refresh_interval: must be > 0, got %s", c.RefreshInterval))
	}
	if c.Disabled && c.TokensFile != "" {
		errs = append(errs, errors.New("auth.tokens_file: set, but auth.disabled is true; remove one"))
	}
	return errors.Join(errs...)
}
