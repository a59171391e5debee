package tokens

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer  abc":  "abc",
		"":             "error:" + ErrNoToken.Error(),
		"Basic abc":    "error:" + ErrMalformed.Error(),
		"Bearer ":      "error:" + ErrMalformed.Error(),
		"Bearer a b":   "error:" + ErrMalformed.Error(),
		"Bearer a\x7f": "error:" + ErrMalformed.Error(),
		"Bearer " + strings.Repeat("x", MaxLen+1): "error:" + ErrMalformed.Error(),
	} {
		got, err := ParseBearer(h)
		if err != nil {
			got = "error:" + err.Error()
		}
		if got != want {
			t.Errorf("ParseBearer(%.20q) = %q, want %q", h, got, want)
		}
	}
}

func TestNewAndHash(t *testing.T) {
	tok, sum, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, Prefix) || len(tok) != 50 || Hash(tok) != sum {
		t.Fatalf("New() = %q, %q", tok, sum)
	}
	if _, err := ParseSum(sum); err != nil {
		t.Fatal(err)
	}
	// printf %s test | sha256sum
	if Hash("test") != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" {
		t.Fatal("Hash is not the hex sha256")
	}
}

func TestParseFileErrors(t *testing.T) {
	sum := Hash("test")
	for name, tc := range map[string]struct{ file, want string }{
		"bad role":       {"- name: a\n  role: root\n  sha256: " + sum + "\n", `[0].role: "root": want one of admin, reader, publisher, agent, client`},
		"duplicate hash": {"- name: a\n  role: reader\n  sha256: " + sum + "\n- name: b\n  role: client\n  sha256: " + sum + "\n", "[1].sha256: also the hash of [0]"},
		"unknown field":  {"- name: a\n  role: client\n  sha256: " + sum + "\n  token: x\n", "field token not found"},
	} {
		if _, err := ParseFile([]byte(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
	if es, err := ParseFile(nil); err != nil || es == nil || len(es) != 0 {
		t.Errorf("empty file: %v %v", es, err)
	}
}

// TestFileReloads: a changed file is read again at the next check; a file
// that no longer decodes keeps the tokens in force and is reported once.
func TestFileReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(body string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write("- {name: app, role: client, sha256: "+Hash("one")+"}\n", base)
	var mu sync.Mutex
	var errs []error
	f, err := OpenFile(path, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	f.now = func() time.Time { return clock }
	if e, ok := f.Lookup("one"); !ok || e.Name != "app" || e.Role != "client" {
		t.Fatalf("Lookup(one) = %+v %v", e, ok)
	}
	if _, ok := f.Lookup("two"); ok {
		t.Fatal("an unlisted token was found")
	}
	write("- {name: app2, role: reader, sha256: "+Hash("two")+"}\n", base.Add(time.Second))
	if _, ok := f.Lookup("two"); ok {
		t.Fatal("the file was read again before CheckEvery passed")
	}
	clock = clock.Add(CheckEvery)
	if e, ok := f.Lookup("two"); !ok || e.Role != "reader" {
		t.Fatalf("after the change: Lookup(two) = %+v %v", e, ok)
	}
	if _, ok := f.Lookup("one"); ok {
		t.Fatal("a token removed from the file is still accepted")
	}
	write("- {name: app3, role: nobody}\n", base.Add(2*time.Second))
	clock = clock.Add(CheckEvery)
	if _, ok := f.Lookup("two"); !ok {
		t.Fatal("a bad file dropped the tokens in force")
	}
	clock = clock.Add(CheckEvery)
	f.Lookup("two")
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "keeping the tokens") {
		t.Fatalf("errors = %v, want one report of the bad file", errs)
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Fatal("OpenFile of a missing file succeeded")
	}
}
