package auth

import (
	"fmt"
	"time"

	"github.com/drover-ml/drover/shared/tokens"
)

// TokenPrefix starts every token Drover generates, so that a leaked token
// can be found by grep (and by secret scanners). Tokens of a tokens_file
// may have any form: only their sha256 is known.
const TokenPrefix = tokens.Prefix

// MaxTokenLen is the longest token accepted in a request.
const MaxTokenLen = tokens.MaxLen

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

// ValidName reports whether s may name a token: 1 to 64 characters of
// lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit.
func ValidName(s string) bool { return tokens.ValidName(s) }

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
func NewToken() (token, sum string, err error) { return tokens.New() }

// Hash returns the hex sha256 of token: what a tokens_file lists and what
// ClickHouse stores (`printf %s "$TOKEN" | sha256sum`).
func Hash(token string) string { return tokens.Hash(token) }

func parseSum(s string) ([32]byte, error) { return tokens.ParseSum(s) }

// Errors of ParseBearer (all answered 401).
var (
	// ErrNoToken: the request has no Authorization header.
	ErrNoToken = tokens.ErrNoToken
	// ErrMalformed: the Authorization header is not one "Bearer <token>".
	ErrMalformed = tokens.ErrMalformed
)

// ParseBearer returns the token of an Authorization header value "Bearer
// <token>" (tokens.ParseBearer): ErrNoToken for an empty header,
// ErrMalformed for anything else that is not such a value; the error never
// contains the header.
func ParseBearer(header string) (string, error) { return tokens.ParseBearer(header) }

func truncate(s string, n int) string { return tokens.Truncate(s, n) }
