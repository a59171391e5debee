// Package fieldpath puts the path of a configuration section in front of
// the errors its Validate returns, so that every error names its field from
// the file's root: Prefix("jobs", "max_concurrent: must be >= 1, got 0")
// reads "jobs.max_concurrent: must be >= 1, got 0". Validate methods of
// nested sections report paths relative to themselves; the section that
// holds them calls Prefix.
package fieldpath

import (
	"errors"
	"regexp"
	"strings"
)

// fieldLed matches a message that starts with a field path: "max_batch: ",
// "command.argv[1]: ", "policies.iris.psi_threshold: ".
var fieldLed = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-\[\]/]*: `)

// Prefix returns err with path in front of every error it joins
// (errors.Join, recursively), or nil when err is nil. A message that starts
// with a field path ("max_batch: must be >= 1") becomes
// "path.max_batch: must be >= 1"; any other becomes "path: message". A
// message of several lines gets path on each line. The result wraps err's
// errors: errors.Is and errors.As see through it.
func Prefix(path string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			if e = Prefix(path, e); e != nil {
				out = append(out, e)
			}
		}
		return errors.Join(out...)
	}
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		if fieldLed.MatchString(l) {
			lines[i] = path + "." + l
		} else {
			lines[i] = path + ": " + l
		}
	}
	return &prefixed{msg: strings.Join(lines, "\n"), err: err}
}

// prefixed is an error with a new message that wraps the original.
type prefixed struct {
	msg string
	err error
}

func (p *prefixed) Error() string { return p.msg }
func (p *prefixed) Unwrap() error { return p.err }
