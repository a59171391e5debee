package auth

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestTokenJSONMatchesTheContract: the token examples of
// docs/admin-api.md (the droverctl fixtures) decode into TokenInfo and
// CreateResponse without an unknown field and encode back with every
// documented field and value (plus sha256, source and revoked_by, which
// the contract lets clients ignore).
func TestTokenJSONMatchesTheContract(t *testing.T) {
	for _, name := range []string{"tokens", "token-revoke", "token-create"} {
		raw, err := os.ReadFile(filepath.Join("..", "cmd", "droverctl", "testdata", "api", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch name {
		case "tokens":
			v = &[]TokenInfo{}
		case "token-revoke":
			v = &TokenInfo{}
		default:
			v = &CreateResponse{}
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, _ := json.Marshal(v)
		var want, got any
		json.Unmarshal(raw, &want)
		json.Unmarshal(back, &got)
		wantList, ok := want.([]any)
		if !ok {
			wantList, got = []any{want}, []any{got}
		}
		gotList := got.([]any)
		for i, w := range wantList {
			for k, wv := range w.(map[string]any) {
				if gv, ok := gotList[i].(map[string]any)[k]; !ok || !reflect.DeepEqual(gv, wv) {
					t.Errorf("%s[%d].%s = %v (present %v), want %v", name, i, k, gv, ok, wv)
				}
			}
		}
	}
}
