// Package adminclient is the Go client of the collector's admin API. droverctl
// and the tests use it; nothing else talks to the admin API by hand.
package adminclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client talks to one collector's admin API. Safe for concurrent use.
type Client struct {
	// BaseURL is like http://localhost:7070.
	BaseURL string
	// Token, when set, is sent as a bearer token.
	Token string
	HTTP  *http.Client
}

// New returns a client for baseURL with a 10 s request timeout.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// Health returns nil when the collector is alive (GET /healthz).
func (c *Client) Health(ctx context.Context) error { return c.probe(ctx, "/healthz") }

// Ready returns nil when the collector can accept data (GET /readyz), else
// an error carrying the collector's reason.
func (c *Client) Ready(ctx context.Context) error { return c.probe(ctx, "/readyz") }

func (c *Client) probe(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
