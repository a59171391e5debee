package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// JobTokenPrefix starts every job token (IssueJobToken), so that the
// Authenticator tells it from a stored token without a lookup, and a leaked
// one is found by grep.
const JobTokenPrefix = "drover_job_"

// JobTokenRoutes are the only routes a job token may call: the registry's
// publish routes (docs/registry.md), and of those with a {model} only the
// token's model. Everything else is answered 403.
var JobTokenRoutes = []string{
	"POST /v1/models/{model}/versions", // one-request publish
	"POST /v1/models/{model}/commit",   // two-step publish, step 2 (also forwarded to the ring owner)
	"PUT /v1/blobs/sha256/{digest}",    // two-step publish, step 1
}

// ErrExpired is the error of a job token past its expiry (401).
var ErrExpired = errors.New("job token expired")

// jobTokenLabel separates the job-token key from every other use of the
// secret it is derived from.
const jobTokenLabel = "drover job token v1"

// JobTokenKey derives the key that signs and checks job tokens from a
// secret every collector of the cluster shares (the gossip key): HMAC-SHA256
// of the secret over a fixed label, so the gossip key itself never signs
// anything. With no secret (cluster.disabled, or cluster.insecure) it
// returns a random key: job tokens are then accepted only by this process
// (docs/security.md).
func JobTokenKey(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("job token key: %w", err)
		}
		return k, nil
	}
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(jobTokenLabel))
	return h.Sum(nil), nil
}

// jobClaims is the signed part of a job token.
type jobClaims struct {
	Model   string `json:"m"`
	Job     string `json:"j"`
	Expires int64  `json:"e"` // unix milliseconds
}

// IssueJobToken returns a token with role Publisher for the routes of
// JobTokenRoutes on model only, naming job, valid until expires: the
// credentials a command or webhook job publishes its result with. It is
// JobTokenPrefix + base64url(claims) + "." + base64url(HMAC-SHA256(key,
// claims)); it is never stored anywhere, and every collector that derives
// the same key (JobTokenKey of the same gossip key) accepts it.
func IssueJobToken(key []byte, model, job string, expires time.Time) (string, error) {
	if len(key) == 0 {
		return "", errors.New("issue job token: no key")
	}
	if model == "" || job == "" {
		return "", errors.New("issue job token: model and job are required")
	}
	b, err := json.Marshal(jobClaims{Model: model, Job: job, Expires: expires.UnixMilli()})
	if err != nil {
		return "", fmt.Errorf("issue job token: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	tok := JobTokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(jobMAC(key, payload))
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("issue job token: %d bytes, more than %d (model name too long)", len(tok), MaxTokenLen)
	}
	return tok, nil
}

func jobMAC(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(JobTokenPrefix))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// CheckJobToken verifies a job token with key at now and returns its
// Principal (role Publisher, Name the job id, Model and Job set). The
// error wraps ErrUnknownToken for anything that is not a job token signed
// with key (the reason is said, never the expected MAC), ErrExpired for
// one whose expiry has passed.
func CheckJobToken(key []byte, token string, now time.Time) (Principal, error) {
	rest, ok := strings.CutPrefix(token, JobTokenPrefix)
	if !ok || len(key) == 0 {
		return Principal{}, fmt.Errorf("%w: not a job token", ErrUnknownToken)
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return Principal{}, fmt.Errorf("%w: malformed job token", ErrUnknownToken)
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, jobMAC(key, payload)) {
		return Principal{}, fmt.Errorf("%w: job token signature does not match (another cluster's key, or altered)", ErrUnknownToken)
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: malformed job token", ErrUnknownToken)
	}
	var c jobClaims
	if err := json.Unmarshal(raw, &c); err != nil || c.Model == "" || c.Job == "" {
		return Principal{}, fmt.Errorf("%w: malformed job token claims", ErrUnknownToken)
	}
	p := Principal{Name: c.Job, Role: Publisher, Model: c.Model, Job: c.Job}
	if exp := time.UnixMilli(c.Expires); !now.Before(exp) {
		return p, fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	return p, nil
}

// scopeAllows reports whether p may call r: a principal without a model
// scope may call anything its role allows; a job token's principal only the
// routes of JobTokenRoutes, and those with a {model} only for its model.
func scopeAllows(p Principal, r *http.Request) error {
	if p.Model == "" {
		return nil
	}
	pattern := r.Pattern
	if !slices.Contains(JobTokenRoutes, pattern) {
		return fmt.Errorf("job token of %s may only publish (%s), not %s", p.Job, strings.Join(JobTokenRoutes, ", "), action(r))
	}
	if strings.Contains(pattern, "{model}") && r.PathValue("model") != p.Model {
		return fmt.Errorf("job token of %s may publish model %q only, not %q", p.Job, p.Model, r.PathValue("model"))
	}
	return nil
}
