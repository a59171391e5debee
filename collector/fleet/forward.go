package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/drover-ml/drover/collector/forward"
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
	cred := forward.Credential(ctx)
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
