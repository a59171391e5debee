package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/drover-ml/drover/collector/registry"
)

// errNotOwner: a forwarded change reached a collector that does not own
// the model (the ring changed under the forwarder). It answers 503 and the
// forwarder asks the ring again.
var errNotOwner = errors.New("not the owner of the model")

// credentialKey carries the Authorization header of the request a change
// continues, for the forwarded request; forwardedKey marks a change
// another collector forwarded (its value is that collector's name): it is
// applied here or refused, never forwarded again.
type (
	credentialKey struct{}
	forwardedKey  struct{}
)

// remoteError is the owner's error answer to a forwarded change; it maps
// back to the same status.
type remoteError struct {
	code int
	msg  string
}

func (e *remoteError) Error() string { return e.msg }

// maxStateBytes bounds a desired state's JSON (an answer or a request).
const maxStateBytes = 64 << 10

// send forwards a change to the owner at admin: the same route, the
// caller's Authorization, registry.HeaderForwardedBy set.
func (f *Fleet) send(ctx context.Context, admin, model, change string, req Request) (State, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return State{}, err
	}
	u := f.o.Scheme + "://" + admin + "/v1/models/" + url.PathEscape(model) + "/" + change
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return State{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(registry.HeaderForwardedBy, f.o.Node)
	if cred, _ := ctx.Value(credentialKey{}).(string); cred != "" {
		hr.Header.Set("Authorization", cred)
	}
	resp, err := f.o.Client.Do(hr)
	if err != nil {
		return State{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStateBytes))
	if err != nil {
		return State{}, fmt.Errorf("read the owner's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return State{}, &remoteError{code: resp.StatusCode, msg: e.Error}
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil || s.Revision == 0 {
		return State{}, fmt.Errorf("the owner's answer %q: %v", b, err)
	}
	return s, nil
}
