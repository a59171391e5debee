// Package redact takes secrets out of URLs and DSNs before they reach a log
// line, an error or an API answer: the password of the user info, and the
// values of query parameters that carry credentials (S3 keys and
// signatures, tokens, passwords).
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// secretParam says whether a query parameter's value is a credential, by
// its name (case-insensitive): passwords, secrets, tokens, keys,
// signatures and credentials, in any of the spellings object-store and
// webhook URLs use (access_key_id, secret_access_key, X-Amz-Signature,
// X-Amz-Credential, sig, ...).
var secretParam = regexp.MustCompile(`(?i)(pass|pwd|secret|token|key|sig|credential|auth|session)`)

// URL returns s with the password of its user info and the values of
// credential query parameters replaced by Mask. A string that does not
// parse as a URL is reduced to its scheme (or Mask): it may still hold a
// secret, and cannot be cut safely. Anything left that reads as
// "://user:password@" (in a fragment, a path) is masked too.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.Index(s, "://"); i > 0 && !strings.ContainsAny(s[:i], "@:/?#") {
			return s[:i] + "://" + Mask
		}
		return Mask
	}
	if u.Scheme != "" || u.User != nil || u.RawQuery != "" {
		s = redacted(u)
	}
	return UserinfoPassword.ReplaceAllString(s, "${1}:"+Mask+"@")
}

// UserinfoPassword matches "://user:password@" anywhere in a text; group 1
// is up to the user name.
var UserinfoPassword = regexp.MustCompile(`(://[^/?#@\s:]*):[^@/?#\s]*@`)

func redacted(u *url.URL) string {
	c := *u
	if _, has := c.User.Password(); has {
		c.User = url.UserPassword(c.User.Username(), Mask)
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = Mask
		} else {
			for k, vs := range q {
				if secretParam.MatchString(k) {
					for i := range vs {
						vs[i] = Mask
					}
				}
			}
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

// urlIn finds URLs (scheme://...) inside a longer text.
var urlIn = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// Text returns s with every URL in it redacted (URL), and each of secrets
// (non-empty ones) replaced by Mask: for error messages of libraries that
// quote a DSN or a password.
func Text(s string, secrets ...string) string {
	s = urlIn.ReplaceAllStringFunc(s, URL)
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	return s
}
