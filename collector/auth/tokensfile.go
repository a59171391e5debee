package auth

import (
	"errors"
	"fmt"
	"os"

	"github.com/drover-ml/drover/shared/tokens"
)

// MaxTokensFileBytes is the largest tokens_file read.
const MaxTokensFileBytes = tokens.MaxFileBytes

// ParseTokensFile decodes a tokens_file with tokens.ParseFile: a YAML list
// of {name, role, sha256} (sha256: 64 lower-case hex digits of the token's
// hash), with unknown fields, unknown roles, bad names, and repeated names
// or hashes rejected. Every problem is reported with its path ("[2].role:
// ..."). An empty document is an empty list. The tokens come back with
// Source SourceTokensFile.
func ParseTokensFile(data []byte) ([]Token, error) {
	es, err := tokens.ParseFile(data)
	if err != nil {
		return nil, err
	}
	return fromEntries(es), nil
}

func fromEntries(es []tokens.Entry) []Token {
	out := make([]Token, 0, len(es))
	for _, e := range es {
		out = append(out, Token{Name: e.Name, Role: Role(e.Role), SHA256: e.SHA256, CreatedBy: "tokens_file", Source: SourceTokensFile})
	}
	return out
}

// readTokensFile reads and decodes path, naming it in the error.
func readTokensFile(path string) ([]Token, error) {
	es, err := tokens.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("auth.tokens_file: %w", err)
		}
		return nil, fmt.Errorf("auth.tokens_file %w", err)
	}
	return fromEntries(es), nil
}
