// Package forward sends a request that another collector must handle (the
// ring owner of a model: registry commits, fleet changes) and reads its
// answer, written once for every package that forwards.
package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// HeaderForwardedBy names the collector that forwarded a request: the
// receiver handles it or refuses it, and never forwards it again.
const HeaderForwardedBy = "Drover-Forwarded-By"

// Error is the owner's error answer: its status and message, so the
// forwarding collector can answer its client with the same.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Post sends body (JSON) to url with HeaderForwardedBy set to node and the
// caller's Authorization header (when not empty), and returns the body of
// a 200 or 201 answer, read up to max bytes. Any other status is an *Error
// carrying the answer's {"error"} message (or its status line).
func Post(ctx context.Context, client *http.Client, url, node, authorization string, body []byte, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderForwardedBy, node)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max))
	if err != nil {
		return nil, fmt.Errorf("read the owner's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return nil, &Error{Code: resp.StatusCode, Msg: e.Error}
	}
	return b, nil
}
