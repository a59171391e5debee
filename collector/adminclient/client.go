// Package adminclient is the Go client of the collector's admin API. droverctl
// and the tests use it; nothing else talks to the admin API by hand.
//
// A Client knows one or more collectors of a cluster and tries them in turn:
// a request that cannot reach a collector (connection refused, DNS, TLS
// handshake, timeout) moves on to the next URL, while any HTTP answer, even
// an error status, is final. Typed methods decode the API's snake_case JSON
// (docs/admin-api.md) into the structs of this package and also return the
// raw body in Meta, so a caller can pass it through without losing fields.
//
// Errors: an HTTP error status becomes an *APIError (status and the
// server's message); no collector answering becomes an *UnreachableError
// listing every URL tried and why.
package adminclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drover-ml/drover/shared/tlsconfig"
)

// DefaultTimeout bounds one request to one collector.
const DefaultTimeout = 10 * time.Second

// maxBody bounds the response bodies the client reads.
const maxBody = 64 << 20

// Config says how to reach the collectors.
type Config struct {
	// URLs are collector admin API base URLs, like http://localhost:7070,
	// tried in order. At least one is required.
	URLs []string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// CAFile, when set, is a PEM file of the certificates that verify the
	// collectors' TLS certificates, instead of the system's roots.
	CAFile string
	// CertFile and KeyFile, when set (both or neither), are the client
	// certificate presented to collectors whose admin.tls verifies client
	// certificates (mTLS); read again when they change on disk.
	CertFile, KeyFile string
	// Timeout bounds one request to one collector; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Client talks to the admin API of a cluster's collectors. It is safe for
// concurrent use; it holds idle connections until Close.
type Client struct {
	urls  []string
	token string
	http  *http.Client
	// stream has no overall timeout (only ctx bounds it): uploads and
	// downloads of model files take as long as their size needs.
	stream *http.Client
	err    error // from New: every request fails with it
}

// New returns a client for baseURL (one URL, or several separated by
// commas) with a 10 s request timeout and the system's TLS roots. When
// baseURL is not a valid URL list, every request fails saying why;
// NewClient reports that at once.
func New(baseURL, token string) *Client {
	c, err := NewClient(Config{URLs: SplitURLs(baseURL), Token: token})
	if err != nil {
		return &Client{token: token, http: &http.Client{}, stream: &http.Client{}, err: err}
	}
	return c
}

// SplitURLs splits a comma-separated list of URLs, dropping blanks and
// trailing slashes.
func SplitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// NewClient returns a client for cfg. It fails when no URL is given, a URL
// is not http(s)://host[:port][/path], the CA file cannot be read or holds
// no certificate, or the client certificate and key do not load.
func NewClient(cfg Config) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("no collector URL")
	}
	urls := make([]string, len(cfg.URLs))
	for i, raw := range cfg.URLs {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("collector URL %q: want http://host:port or https://host:port", raw)
		}
		urls[i] = u.String()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	tc, err := tlsconfig.Client{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}.Config(nil)
	if err != nil {
		return nil, fmt.Errorf("TLS client certificate: %w", err)
	}
	var rt http.RoundTripper = tr
	if cfg.CertFile == "" {
		// A collector that asks for a client certificate gets none; if it
		// then refuses the connection, the error says why (with TLS 1.3 the
		// refusal reaches the client after its handshake, often only as
		// "connection could not be established").
		asked := new(atomic.Bool)
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked.Store(true)
			return &tls.Certificate{}, nil
		}
		rt = certRoundTripper{rt: tr, asked: asked}
	}
	tr.TLSClientConfig = tc
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// Model files: large socket buffers, fewer system calls.
	str := tr.Clone()
	str.WriteBufferSize, str.ReadBufferSize = 256<<10, 256<<10
	srt := http.RoundTripper(str)
	if c, ok := rt.(certRoundTripper); ok {
		srt = certRoundTripper{rt: str, asked: c.asked}
	}
	return &Client{urls: urls, token: cfg.Token, http: &http.Client{Transport: rt, Timeout: timeout},
		stream: &http.Client{Transport: srt}}, nil
}

// ErrNoClientCertificate is wrapped by the error of a request that failed
// after a collector asked for a client certificate and the client had none
// (Config.CertFile): most likely the collector requires one.
var ErrNoClientCertificate = errors.New("the collector asked for a client certificate and none was given")

// certRoundTripper wraps the errors of rt with ErrNoClientCertificate once
// a server has asked for a client certificate.
type certRoundTripper struct {
	rt    *http.Transport
	asked *atomic.Bool
}

// CloseIdleConnections lets Client.Close reach the transport.
func (t certRoundTripper) CloseIdleConnections() { t.rt.CloseIdleConnections() }

func (t certRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil && t.asked.Load() && r.Context().Err() == nil {
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			err = fmt.Errorf("%w: %w", ErrNoClientCertificate, err)
		}
	}
	return resp, err
}

// URLs returns the collector URLs in the order they are tried.
func (c *Client) URLs() []string { return append([]string(nil), c.urls...) }

// At returns a client for the one collector url (one of URLs, typically a
// Meta.URL), sharing c's token and connections.
func (c *Client) At(url string) *Client {
	return &Client{urls: []string{url}, token: c.token, http: c.http, stream: c.stream, err: c.err}
}

// Close releases idle connections. The client stays usable.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Meta describes the answer to a request.
type Meta struct {
	// URL is the base URL of the collector that answered.
	URL string
	// Status is the HTTP status code.
	Status int
	// Raw is the response body as the collector sent it.
	Raw json.RawMessage
}

// Health returns nil when a collector is alive (GET /healthz). The token is
// sent when set but not needed.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.Probe(ctx, "/healthz")
	return err
}

// Ready returns nil when a collector can accept data (GET /readyz), else an
// error carrying the collector's reason (an *APIError for 503).
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Probe(ctx, "/readyz")
	return err
}

// Probe GETs a plain-text endpoint such as /healthz and returns which
// collector answered. A status other than 200 is an *APIError.
func (c *Client) Probe(ctx context.Context, path string) (*Meta, error) {
	return c.do(ctx, http.MethodGet, path, nil, nil, nil)
}

// Do sends a request with in (when not nil) as its JSON body, decodes a
// successful JSON answer into out (when not nil) and returns the answer's
// Meta. It is what the typed methods use; callers may use it for
// endpoints the typed methods do not cover yet.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) (*Meta, error) {
	return c.do(ctx, method, path, query, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (*Meta, error) {
	if c.err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, c.err)
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = b
	}
	target := path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var attempts []Attempt
	for _, base := range c.urls {
		req, err := http.NewRequestWithContext(ctx, method, base+target, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, target, err)
		}
		if body == nil {
			req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: %w", method, target, ctx.Err())
			}
			attempts = append(attempts, Attempt{URL: base, Err: unwrapURLError(err)})
			if !failoverSafe(method, err) {
				// The request may have reached the collector; sending it to
				// another one could do it twice.
				return nil, &UnreachableError{Method: method, Path: target, Attempts: attempts, Stopped: true}
			}
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s %s%s: read answer: %w", method, base, target, err)
		}
		meta := &Meta{URL: base, Status: resp.StatusCode, Raw: raw}
		if resp.StatusCode >= 300 {
			return meta, newAPIError(method, base+target, resp, raw)
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return meta, fmt.Errorf("%s %s%s: decode answer: %w", method, base, target, err)
			}
		}
		return meta, nil
	}
	return nil, &UnreachableError{Method: method, Path: target, Attempts: attempts}
}

// failoverSafe reports whether a request that failed with err may be sent
// to the next collector: always for reads, and for writes only when the
// request cannot have been sent (the connection or TLS handshake failed).
func failoverSafe(method string, err error) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		rh tls.RecordHeaderError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &rh)
}

// unwrapURLError drops net/http's `Get "URL": ` prefix: the attempt names
// the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}
