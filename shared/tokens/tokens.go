// Package tokens is what the collector and the agent both know of bearer
// tokens: their form in an Authorization header, their sha256 (the only
// thing ever stored), the tokens_file format that lists them by hash with
// a name and a role, and a File that reloads such a file when it changes.
//
// A tokens_file is a YAML list:
//
//   - name: ci-publisher
//     role: publisher
//     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// where sha256 is `printf %s "$TOKEN" | sha256sum`. The roles are fixed
// (RoleNames); what each may do is the business of the server that checks
// it (collector/auth for the collector, agent/serve for the agent).
package tokens

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Prefix starts every token Drover generates, so that a leaked token can
// be found by grep (and by secret scanners). Tokens of a tokens_file may
// have any form: only their sha256 is known.
const Prefix = "drover_"

// tokenBytes is the randomness of a generated token (256 bits).
const tokenBytes = 32

// MaxLen is the longest token accepted in a request.
const MaxLen = 512

// MaxFileBytes is the largest tokens_file read.
const MaxFileBytes = 1 << 20

// RoleNames lists every role a token may have, most powerful first. The
// collector's auth.Roles is the same list (a test there checks it).
var RoleNames = []string{"admin", "reader", "publisher", "agent", "client"}

// RoleList is RoleNames joined by ", ", for error messages.
func RoleList() string { return strings.Join(RoleNames, ", ") }

// Entry is one entry of a tokens_file: a token known by its hash.
type Entry struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`
	SHA256 string `yaml:"sha256"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s may name a token: 1 to 64 characters of
// lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// New returns a new random token: Prefix and 32 bytes from crypto/rand in
// unpadded base64url (50 characters in all), and its sha256 in hex.
func New() (token, sum string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	token = Prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, Hash(token), nil
}

// Hash returns the hex sha256 of token: what a tokens_file lists
// (`printf %s "$TOKEN" | sha256sum`).
func Hash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseSum decodes a hash as Hash writes it: 64 lower-case hex digits.
func ParseSum(s string) ([32]byte, error) {
	var out [32]byte
	if !sha256RE.MatchString(s) {
		return out, fmt.Errorf("sha256 %q: want 64 lower-case hex digits", Truncate(s, 80))
	}
	_, err := hex.Decode(out[:], []byte(s))
	return out, err
}

// Errors of ParseBearer (answered 401 by every server).
var (
	// ErrNoToken: the request has no Authorization header.
	ErrNoToken = errors.New("no token: send Authorization: Bearer <token>")
	// ErrMalformed: the Authorization header is not one "Bearer <token>".
	ErrMalformed = errors.New("malformed Authorization header: want Bearer <token>")
)

// ParseBearer returns the token of an Authorization header value "Bearer
// <token>" (the scheme in any case, RFC 7235; one or more spaces). The token
// must be 1 to MaxLen visible ASCII characters. An empty header is
// ErrNoToken, anything else that is not such a value ErrMalformed; the
// error never contains the header.
func ParseBearer(header string) (string, error) {
	if header == "" {
		return "", ErrNoToken
	}
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformed
	}
	token := strings.TrimLeft(rest, " ")
	if token == "" || len(token) > MaxLen {
		return "", ErrMalformed
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return "", ErrMalformed
		}
	}
	return token, nil
}

// Truncate shortens s to n bytes and an ellipsis, for error messages that
// quote what a client or a file sent.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ParseFile decodes a tokens_file: a YAML list of {name, role, sha256}
// (sha256: 64 lower-case hex digits of the token's hash), with unknown
// fields, unknown roles, bad names, and repeated names or hashes rejected.
// Every problem is reported with its path ("[2].role: ..."). An empty
// document is an empty list.
func ParseFile(data []byte) ([]Entry, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%d bytes: larger than %d", len(data), MaxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var entries []Entry
	if err := dec.Decode(&entries); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	var errs []error
	names := map[string]int{}
	sums := map[string]int{}
	for i, e := range entries {
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("[%d].%s: %s", i, field, fmt.Sprintf(format, args...)))
		}
		if !ValidName(e.Name) {
			bad("name", "%q: want 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit", Truncate(e.Name, 80))
		} else if j, dup := names[e.Name]; dup {
			bad("name", "%q: also the name of [%d]", e.Name, j)
		} else {
			names[e.Name] = i
		}
		if !slices.Contains(RoleNames, e.Role) {
			bad("role", "%q: want one of %s", Truncate(e.Role, 80), RoleList())
		}
		if _, err := ParseSum(e.SHA256); err != nil {
			bad("sha256", "%q: want 64 lower-case hex digits (printf %%s \"$TOKEN\" | sha256sum)", Truncate(e.SHA256, 80))
		} else if j, dup := sums[e.SHA256]; dup {
			bad("sha256", "also the hash of [%d]", j)
		} else {
			sums[e.SHA256] = i
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if entries == nil {
		entries = []Entry{}
	}
	return entries, nil
}

// ReadFile reads and decodes the tokens_file at path. Errors name the
// file but not field (the caller prefixes its own key, e.g.
// "auth.tokens_file: ...").
func ReadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	es, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}
