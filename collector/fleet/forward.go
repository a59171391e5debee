package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/drover-ml/drover/collector/forward"
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

// maxStateBytes bounds a desired state's JSON (an answer or a request).
const maxStateBytes = 64 << 10

// send forwards a change to the owner at admin: the same route, the
// caller's Authorization, forward.HeaderForwardedBy set.
func (f *Fleet) send(ctx context.Context, admin, model, change string, req Request) (State, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return State{}, err
	}
	cred, _ := ctx.Value(credentialKey{}).(string)
	u := f.o.Scheme + "://" + admin + "/v1/models/" + url.PathEscape(model) + "/" + change
	b, err := forward.Post(ctx, f.o.Client, u, f.o.Node, cred, body, maxStateBytes)
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil || s.Revision == 0 {
		return State{}, fmt.Errorf("the owner's answer %q: %v", b, err)
	}
	return s, nil
}
