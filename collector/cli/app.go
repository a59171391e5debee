// Package cli is droverctl's logic: each command's run function, the
// rendering of the admin API's answers as a table, JSON or YAML, and the
// mapping of errors to exit codes. collector/cmd/droverctl only declares the
// flags and the command tree and calls into this package, so tests run
// commands in-process.
//
// Every command reaches the collectors through collector/adminclient.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
)

// DefaultCollector is the collector URL when neither --collector nor
// DROVER_COLLECTOR is set.
const DefaultCollector = "http://localhost:7070"

// Output formats of -o.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// Options are droverctl's global flags.
type Options struct {
	// Collector is a comma-separated list of admin API URLs; "" means
	// $DROVER_COLLECTOR, else DefaultCollector.
	Collector string
	// Token is the bearer token; TokenFile a file holding it. At most one
	// may be set; neither means $DROVER_TOKEN.
	Token, TokenFile string
	// TLSCA is a PEM file of certificates that verify the collectors';
	// "" means $DROVER_TLS_CA, else the system's roots.
	TLSCA string
	// TLSCert and TLSKey are the client certificate and its key, for
	// collectors whose admin.tls verifies client certificates; "" means
	// $DROVER_TLS_CERT and $DROVER_TLS_KEY. Both or neither.
	TLSCert, TLSKey string
	// Output is table, json or yaml.
	Output string
	// NoColor turns colour off (NO_COLOR in the environment does too).
	NoColor bool
}

// App runs commands. It is not safe for concurrent use: one App serves one
// command line.
type App struct {
	Opts Options
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Out receives the command's result, Err messages and errors.
	Out, Err io.Writer
	// IsTerminal says whether w is a terminal (colour is used only on
	// one). Nil means: an *os.File that is a character device.
	IsTerminal func(w io.Writer) bool
	// PollInterval is how often --wait asks for a fleet status
	// (DefaultPollInterval when 0).
	PollInterval time.Duration

	client *adminclient.Client
}

func (a *App) getenv(k string) string {
	if a.Getenv == nil {
		return os.Getenv(k)
	}
	return a.Getenv(k)
}

// CollectorURLs returns the collector URLs in the order they are tried:
// --collector, else $DROVER_COLLECTOR, else DefaultCollector.
func (a *App) CollectorURLs() []string {
	s := a.Opts.Collector
	if s == "" {
		s = a.getenv("DROVER_COLLECTOR")
	}
	if s == "" {
		s = DefaultCollector
	}
	return adminclient.SplitURLs(s)
}

// Token returns the bearer token: --token, else the first line of
// --token-file, else $DROVER_TOKEN, else "". Giving both flags is a usage
// error; an unreadable or empty token file is an error.
func (a *App) Token() (string, error) {
	switch {
	case a.Opts.Token != "" && a.Opts.TokenFile != "":
		return "", Usagef("--token and --token-file are mutually exclusive")
	case a.Opts.Token != "":
		return a.Opts.Token, nil
	case a.Opts.TokenFile != "":
		b, err := os.ReadFile(a.Opts.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if tok = strings.TrimSpace(tok); tok == "" {
			return "", fmt.Errorf("token file %s is empty", a.Opts.TokenFile)
		}
		return tok, nil
	}
	return strings.TrimSpace(a.getenv("DROVER_TOKEN")), nil
}

// Validate checks the global flags that every command uses.
func (a *App) Validate() error {
	switch a.Opts.Output {
	case "", OutputTable, OutputJSON, OutputYAML:
	default:
		return Usagef("-o %q: want table, json or yaml", a.Opts.Output)
	}
	if a.Opts.Token != "" && a.Opts.TokenFile != "" {
		return Usagef("--token and --token-file are mutually exclusive")
	}
	if _, cert, key := a.TLSFiles(); (cert == "") != (key == "") {
		return Usagef("--tls-cert and --tls-key ($DROVER_TLS_CERT, $DROVER_TLS_KEY): give both or neither")
	}
	return nil
}

// TLSFiles returns the CA, client certificate and key files: each flag,
// else its environment variable ($DROVER_TLS_CA, $DROVER_TLS_CERT,
// $DROVER_TLS_KEY).
func (a *App) TLSFiles() (ca, cert, key string) {
	pick := func(flag, env string) string {
		if flag != "" {
			return flag
		}
		return strings.TrimSpace(a.getenv(env))
	}
	return pick(a.Opts.TLSCA, "DROVER_TLS_CA"), pick(a.Opts.TLSCert, "DROVER_TLS_CERT"), pick(a.Opts.TLSKey, "DROVER_TLS_KEY")
}

// Client returns the admin API client for the global flags, built on first
// use.
func (a *App) Client() (*adminclient.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	tok, err := a.Token()
	if err != nil {
		return nil, err
	}
	urls := a.CollectorURLs()
	if len(urls) == 0 {
		return nil, Usagef("--collector: no URL")
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, Usagef("--collector %q: want http://host:port or https://host:port", u)
		}
	}
	ca, cert, key := a.TLSFiles()
	c, err := adminclient.NewClient(adminclient.Config{URLs: urls, Token: tok, CAFile: ca, CertFile: cert, KeyFile: key})
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

// Close releases the client's idle connections.
func (a *App) Close() {
	if a.client != nil {
		a.client.Close()
	}
}

// color reports whether output to Out may use colour: not with
// --no-color or NO_COLOR, and only on a terminal.
func (a *App) color() bool {
	if a.Opts.NoColor || a.getenv("NO_COLOR") != "" {
		return false
	}
	if a.IsTerminal != nil {
		return a.IsTerminal(a.Out)
	}
	f, ok := a.Out.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// UsageError is a wrong command line: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}
