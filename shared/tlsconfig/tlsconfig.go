// Package tlsconfig is the TLS configuration of every Drover listener and
// client, written once: certificate and key files reloaded when they change
// on disk (so a rotated certificate needs no restart), optional verification
// of client certificates against a CA file, and clients that verify a
// server against a CA file and may present their own certificate (mTLS).
//
// In YAML a server section reads
//
//	tls:
//	  cert_file: /etc/drover/tls/server.crt
//	  key_file: /etc/drover/tls/server.key
//	  client_ca_file: /etc/drover/tls/clients-ca.crt   # optional
//	  client_auth: require                             # none | request | require
//
// and a client section
//
//	tls:
//	  ca_file: /etc/drover/tls/ca.crt
//	  cert_file: /etc/drover/tls/agent.crt   # optional: a client certificate
//	  key_file: /etc/drover/tls/agent.key
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Client-certificate policies of a Server.
const (
	// ClientAuthNone asks for no client certificate (the default).
	ClientAuthNone = "none"
	// ClientAuthRequest verifies a client certificate when one is sent;
	// clients without one fall back to their token.
	ClientAuthRequest = "request"
	// ClientAuthRequire refuses a handshake without a client certificate
	// signed by client_ca_file.
	ClientAuthRequire = "require"
)

// Server is a listener's TLS: off while CertFile is empty.
type Server struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	ClientAuth   string `yaml:"client_auth"`
}

// Enabled reports whether the listener serves TLS.
func (s Server) Enabled() bool { return s.CertFile != "" || s.KeyFile != "" }

// Validate checks the section; errors name fields relative to it.
func (s Server) Validate() error {
	var errs []error
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file: give both or neither"))
	}
	switch s.ClientAuth {
	case "", ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if s.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("client_ca_file: required with client_auth %s", s.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("client_auth: %q is not none, request or require", s.ClientAuth))
	}
	if s.ClientCAFile != "" && !s.Enabled() {
		errs = append(errs, errors.New("client_ca_file: needs cert_file and key_file"))
	}
	if len(errs) == 0 && s.Enabled() {
		if _, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("cert_file: %w", err))
		}
		if s.ClientCAFile != "" {
			if _, err := loadPool(s.ClientCAFile); err != nil {
				errs = append(errs, fmt.Errorf("client_ca_file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Config returns the listener's *tls.Config, or nil when TLS is off. The
// certificate, key and client CA files are read again when their size or
// modification time changes (checked at most once a second, at a
// handshake); a file that does not load keeps the previous certificate and
// the error is returned by the next Config call's reloader through
// onError (nil: ignored).
func (s Server) Config(onError func(error)) (*tls.Config, error) {
	if !s.Enabled() {
		return nil, nil
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &reloader{certFile: s.CertFile, keyFile: s.KeyFile, caFile: s.ClientCAFile, onError: onError}
	if err := r.load(); err != nil {
		return nil, err
	}
	auth := tls.NoClientCert
	switch s.ClientAuth {
	case ClientAuthRequest:
		auth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		auth = tls.RequireAndVerifyClientCert
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: auth}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := r.current()
			c := base.Clone()
			c.Certificates = []tls.Certificate{*cert}
			c.ClientCAs = pool
			c.NextProtos = []string{"h2", "http/1.1"}
			return c, nil
		},
	}, nil
}

// Client is how a Drover client reaches a TLS server: CAFile verifies the
// server (empty: the system's roots); CertFile and KeyFile are its own
// certificate for servers that ask for one (reloaded like a Server's).
type Client struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Validate checks the section; errors name fields relative to it.
func (c Client) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file: give both or neither"))
	} else if c.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("cert_file: %w", err))
		}
	}
	if c.CAFile != "" {
		if _, err := loadPool(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Config returns the client's *tls.Config.
func (c Client) Config(onError func(error)) (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		r := &reloader{certFile: c.CertFile, keyFile: c.KeyFile, onError: onError}
		if err := r.load(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := r.current()
			return cert, nil
		}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}

// checkEvery bounds how often a handshake looks at the files.
const checkEvery = time.Second

// reloader holds a certificate (and a CA pool) loaded from files and
// loads them again when one of the files changes.
type reloader struct {
	certFile, keyFile, caFile string
	onError                   func(error)

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cert    *tls.Certificate
	pool    *x509.CertPool
}

// stampOf is the files' sizes and modification times.
func (r *reloader) stampOf() string {
	s := ""
	for _, f := range []string{r.certFile, r.keyFile, r.caFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			s += "missing;"
		}
	}
	return s
}

func (r *reloader) load() error {
	stamp := r.stampOf()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load %s: %w", r.certFile, err)
	}
	var pool *x509.CertPool
	if r.caFile != "" {
		if pool, err = loadPool(r.caFile); err != nil {
			return fmt.Errorf("load %s: %w", r.caFile, err)
		}
	}
	r.cert, r.pool, r.stamp, r.checked = &cert, pool, stamp, time.Now()
	return nil
}

func (r *reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= checkEvery {
		r.checked = time.Now()
		if stamp := r.stampOf(); stamp != r.stamp {
			if err := r.load(); err != nil {
				r.stamp = stamp // report a bad file once, not at every handshake
				if r.onError != nil {
					r.onError(fmt.Errorf("tls: keeping the previous certificate: %w", err))
				}
			}
		}
	}
	return r.cert, r.pool
}
