package auth

import (
	"strings"
	"testing"
)

const sumA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
const sumB = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

func TestParseTokensFile(t *testing.T) {
	good := "# not Drover config\n- name: ci-publisher\n  role: publisher\n  sha256: " + sumA + "\n- name: grafana\n  role: reader\n  sha256: " + sumB + "\n"
	ts, err := ParseTokensFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "ci-publisher" || ts[0].Role != Publisher || ts[0].SHA256 != sumA ||
		ts[1].Name != "grafana" || ts[1].Role != Reader || ts[0].Source != SourceTokensFile {
		t.Errorf("parsed %+v", ts)
	}
	for _, empty := range []string{"", "# nothing yet\n", "[]\n"} {
		if ts, err := ParseTokensFile([]byte(empty)); err != nil || len(ts) != 0 {
			t.Errorf("ParseTokensFile(%q) = %v, %v; want no tokens", empty, ts, err)
		}
	}
	for name, tc := range map[string]struct{ file, want string }{
		"unknown field":   {"- name: a\n  role: reader\n  sha256: " + sumA + "\n  token: drover_x\n", "field token not found"},
		"bad role":        {"- name: a\n  role: root\n  sha256: " + sumA + "\n", `[0].role: "root": want one of admin, reader, publisher, agent, client`},
		"bad name":        {"- name: A B\n  role: reader\n  sha256: " + sumA + "\n", `[0].name: "A B"`},
		"missing name":    {"- role: reader\n  sha256: " + sumA + "\n", `[0].name: ""`},
		"upper-case hash": {"- name: a\n  role: reader\n  sha256: " + strings.ToUpper(sumA) + "\n", "[0].sha256"},
		"short hash":      {"- name: a\n  role: reader\n  sha256: abc\n", `[0].sha256: "abc"`},
		"duplicate name":  {"- name: a\n  role: reader\n  sha256: " + sumA + "\n- name: a\n  role: agent\n  sha256: " + sumB + "\n", `[1].name: "a": also the name of [0]`},
		"duplicate hash":  {"- name: a\n  role: reader\n  sha256: " + sumA + "\n- name: b\n  role: agent\n  sha256: " + sumA + "\n", "[1].sha256: also the hash of [0]"},
		"a map":           {"tokens:\n  - name: a\n", "cannot unmarshal"},
		"two documents":   {"[]\n---\n[]\n", "more than one YAML document"},
		"too large":       {strings.Repeat("#", MaxTokensFileBytes+1), "larger than"},
		"two errors":      {"- name: a\n  role: x\n  sha256: y\n", "[0].role"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTokensFile([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzTokensFile: any input is decoded or rejected without panicking, and
// what is accepted is valid: known roles, valid names, well-formed unique
// hashes. Seeds: testdata/fuzz/FuzzTokensFile.
func FuzzTokensFile(f *testing.F) {
	f.Add([]byte("- name: a\n  role: reader\n  sha256: " + sumA + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ParseTokensFile(data)
		if err != nil {
			return
		}
		names, sums := map[string]bool{}, map[string]bool{}
		for _, tok := range ts {
			if _, err := ParseRole(string(tok.Role)); err != nil {
				t.Fatalf("accepted role %q", tok.Role)
			}
			if !ValidName(tok.Name) || names[tok.Name] {
				t.Fatalf("accepted name %q (twice: %v)", tok.Name, names[tok.Name])
			}
			if _, err := parseSum(tok.SHA256); err != nil || sums[tok.SHA256] {
				t.Fatalf("accepted sha256 %q", tok.SHA256)
			}
			names[tok.Name], sums[tok.SHA256] = true, true
		}
	})
}
