package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// TokenPrefix starts every token Drover generates, so that a leaked token
// can be found by grep (and by secret scanners). Tokens of a tokens_file
// may have any form: only their sha256 is known.
const TokenPrefix = "drover_"

// tokenBytes is the randomness of a generated token (256 bits).
const tokenBytes = 32

// MaxTokenLen is the longest token accepted in a request.
const MaxTokenLen = 512

// Token is what is known of a token: never the token itself, only its
// sha256. The JSON form is what the admin API lists.
type Token struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	SHA256    string     `json:"sha256"`
	Created   time.Time  `json:"created"`
	CreatedBy string     `json:"created_by"`
	Revoked   bool       `json:"revoked"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by"`
	// Source is where the token is defined: SourceClickHouse (created
	// through the API or at bootstrap) or SourceTokensFile.
	Source Source `json:"source"`
}

// Source says where a token is defined.
type Source string

// The sources of tokens.
const (
	SourceClickHouse Source = "clickhouse"
	SourceTokensFile Source = "tokens_file"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s may name a token: 1 to 64 characters of
// lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckName returns an error saying why s cannot name a token, or nil.
func CheckName(s string) error {
	if !ValidName(s) {
		return fmt.Errorf("token name %q: want 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit", s)
	}
	return nil
}

// NewToken returns a new random token: TokenPrefix and 32 bytes from
// crypto/rand in unpadded base64url (50 characters in all), and its sha256
// in hex.
func NewToken() (token, sum string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, Hash(token), nil
}

// Hash returns the hex sha256 of token: what a tokens_file lists and what
// ClickHouse stores (`printf %s "$TOKEN" | sha256sum`).
func Hash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func parseSum(s string) ([32]byte, error) {
	var out [32]byte
	if !sha256RE.MatchString(s) {
		return out, fmt.Errorf("sha256 %q: want 64 lower-case hex digits", truncate(s, 80))
	}
	_, err := hex.Decode(out[:], []byte(s))
	return out, err
}

// Errors of ParseBearer (all answered 401).
var (
	// ErrNoToken: the request has no Authorization header.
	ErrNoToken = errors.New("no token: send Authorization: Bearer <token>")
	// ErrMalformed: the Authorization header is not one "Bearer <token>".
	ErrMalformed = errors.New("malformed Authorization header: want Bearer <token>")
)

// ParseBearer returns the token of an Authorization header value "Bearer
// <token>" (the scheme in any case, RFC 7235; one or more spaces). The token
// must be 1 to MaxTokenLen visible ASCII characters. An empty header is
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
	if token == "" || len(token) > MaxTokenLen {
		return "", ErrMalformed
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return "", ErrMalformed
		}
	}
	return token, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
