package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// MaxTokensFileBytes is the largest tokens_file read.
const MaxTokensFileBytes = 1 << 20

// fileEntry is one entry of a tokens_file.
type fileEntry struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`
	SHA256 string `yaml:"sha256"`
}

// ParseTokensFile decodes a tokens_file: a YAML list of {name, role,
// sha256} (sha256: 64 lower-case hex digits of the token's hash), with
// unknown fields, unknown roles, bad names, and repeated names or hashes
// rejected. Every problem is reported with its path ("[2].role: ...").
// An empty document is an empty list. The tokens come back with
// Source SourceTokensFile.
func ParseTokensFile(data []byte) ([]Token, error) {
	if len(data) > MaxTokensFileBytes {
		return nil, fmt.Errorf("%d bytes: larger than %d", len(data), MaxTokensFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var entries []fileEntry
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
	out := make([]Token, 0, len(entries))
	for i, e := range entries {
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("[%d].%s: %s", i, field, fmt.Sprintf(format, args...)))
		}
		if !ValidName(e.Name) {
			bad("name", "%q: want 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit", truncate(e.Name, 80))
		} else if j, dup := names[e.Name]; dup {
			bad("name", "%q: also the name of [%d]", e.Name, j)
		} else {
			names[e.Name] = i
		}
		role, err := ParseRole(e.Role)
		if err != nil {
			bad("role", "%q: want one of %s", truncate(e.Role, 80), roleList())
		}
		if _, err := parseSum(e.SHA256); err != nil {
			bad("sha256", "%q: want 64 lower-case hex digits (printf %%s \"$TOKEN\" | sha256sum)", truncate(e.SHA256, 80))
		} else if j, dup := sums[e.SHA256]; dup {
			bad("sha256", "also the hash of [%d]", j)
		} else {
			sums[e.SHA256] = i
		}
		out = append(out, Token{Name: e.Name, Role: role, SHA256: e.SHA256, CreatedBy: "tokens_file", Source: SourceTokensFile})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// readTokensFile reads and decodes path, naming it in the error.
func readTokensFile(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth.tokens_file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTokensFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth.tokens_file: read %s: %w", path, err)
	}
	ts, err := ParseTokensFile(data)
	if err != nil {
		return nil, fmt.Errorf("auth.tokens_file %s: %w", path, err)
	}
	return ts, nil
}
