package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, sum, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^drover_[A-Za-z0-9_-]{43}$`).MatchString(tok) {
			t.Fatalf("token %q: want drover_ and 43 base64url characters (32 bytes)", tok)
		}
		h := sha256.Sum256([]byte(tok))
		if sum != hex.EncodeToString(h[:]) || Hash(tok) != sum {
			t.Fatalf("sum %s is not the sha256 of the token", sum)
		}
		if seen[tok] {
			t.Fatal("the same token twice")
		}
		seen[tok] = true
		if p, err := ParseBearer("Bearer " + tok); err != nil || p != tok {
			t.Fatalf("a generated token does not parse back: %q, %v", p, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "ci", "ci-publisher", "host01.agent", "a_b", strings.Repeat("x", 64), "0"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-a", ".a", "_a", "A", "ci publisher", "ci/x", strings.Repeat("x", 65), "é", "a\n"} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func TestParseBearer(t *testing.T) {
	for name, tc := range map[string]struct {
		header, want string
		err          error
	}{
		"bearer":               {"Bearer drover_abc", "drover_abc", nil},
		"scheme in any case":   {"bEARER drover_abc", "drover_abc", nil},
		"several spaces":       {"Bearer   drover_abc", "drover_abc", nil},
		"any visible ascii":    {"Bearer a.b~c+/=", "a.b~c+/=", nil},
		"empty":                {"", "", ErrNoToken},
		"basic":                {"Basic dXNlcjpwYXNz", "", ErrMalformed},
		"scheme only":          {"Bearer", "", ErrMalformed},
		"scheme and space":     {"Bearer ", "", ErrMalformed},
		"two tokens":           {"Bearer a b", "", ErrMalformed},
		"trailing space":       {"Bearer a ", "", ErrMalformed},
		"tab":                  {"Bearer\ta", "", ErrMalformed},
		"control char":         {"Bearer a\x00b", "", ErrMalformed},
		"non-ascii":            {"Bearer tökén", "", ErrMalformed},
		"too long":             {"Bearer " + strings.Repeat("a", MaxTokenLen+1), "", ErrMalformed},
		"longest":              {"Bearer " + strings.Repeat("a", MaxTokenLen), strings.Repeat("a", MaxTokenLen), nil},
		"token without scheme": {"drover_abc", "", ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseBearer(tc.header)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", tc.header, got, err, tc.want, tc.err)
			}
			if err != nil && len(tc.header) > len("Bearer ") && strings.Contains(err.Error(), tc.header) {
				t.Errorf("error %q repeats the header", err)
			}
		})
	}
}

// FuzzParseBearer: any header either fails with ErrNoToken/ErrMalformed or
// yields a token of 1 to MaxTokenLen visible ASCII characters that parses
// back to itself.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer x", "bearer drover_abc", "Basic x", "Bearer  a b", "Bearer \x7f", "Bearer\x00x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := ParseBearer(header)
		if err != nil {
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			if tok != "" {
				t.Fatalf("token %q with error %v", tok, err)
			}
			return
		}
		if tok == "" || len(tok) > MaxTokenLen {
			t.Fatalf("token length %d", len(tok))
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] >= 0x7f {
				t.Fatalf("token %q has byte %#x", tok, tok[i])
			}
		}
		if !strings.HasSuffix(header, tok) {
			t.Fatalf("token %q is not the end of the header %q", tok, header)
		}
		if again, err := ParseBearer("Bearer " + tok); err != nil || again != tok {
			t.Fatalf("round trip: %q, %v", again, err)
		}
	})
}
