package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/drover-ml/drover/collector/adminclient"
)

func TestColor(t *testing.T) {
	terminal := func(io.Writer) bool { return true }
	cases := []struct {
		name string
		app  App
		want bool
	}{
		{"terminal", App{IsTerminal: terminal}, true},
		{"not a terminal", App{IsTerminal: func(io.Writer) bool { return false }}, false},
		{"buffer", App{Out: &bytes.Buffer{}}, false},
		{"--no-color", App{IsTerminal: terminal, Opts: Options{NoColor: true}}, false},
		{"NO_COLOR", App{IsTerminal: terminal, Getenv: func(k string) string {
			if k == "NO_COLOR" {
				return "1"
			}
			return ""
		}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.app.Getenv = orEmpty(tc.app.Getenv)
			if got := tc.app.color(); got != tc.want {
				t.Errorf("color() = %v, want %v", got, tc.want)
			}
		})
	}
}

func orEmpty(f func(string) string) func(string) string {
	if f != nil {
		return f
	}
	return func(string) string { return "" }
}

// TestColoredTableAligns: colour codes do not count toward column widths.
func TestColoredTableAligns(t *testing.T) {
	var plainBuf, colorBuf bytes.Buffer
	rows := [][]cell{{c("a"), stateCell("alive"), c("x")}, {c("bbb"), stateCell("suspect"), c("y")}}
	(&writer{out: &plainBuf}).table([]string{"N", "STATE", "Z"}, rows)
	(&writer{out: &colorBuf, color: true}).table([]string{"N", "STATE", "Z"}, rows)
	if !strings.Contains(colorBuf.String(), "\x1b[32malive\x1b[0m") || !strings.Contains(colorBuf.String(), "\x1b[33msuspect\x1b[0m") {
		t.Fatalf("no colour:\n%q", colorBuf.String())
	}
	stripped := strings.NewReplacer("\x1b[32m", "", "\x1b[33m", "", "\x1b[0m", "").Replace(colorBuf.String())
	if stripped != plainBuf.String() {
		t.Errorf("coloured table, codes stripped:\n%s\nplain:\n%s", stripped, plainBuf.String())
	}
	want := "N    STATE    Z\na    alive    x\nbbb  suspect  y\n"
	if plainBuf.String() != want {
		t.Errorf("table:\n%q\nwant:\n%q", plainBuf.String(), want)
	}
}

func TestOptionalColumnsDropped(t *testing.T) {
	var b bytes.Buffer
	(&writer{out: &b}).table([]string{"A", "B", "C"}, [][]cell{{c("1"), c("-"), c("3")}, {c("4"), c("-"), c("6")}}, 1)
	if b.String() != "A  C\n1  3\n4  6\n" {
		t.Errorf("got %q", b.String())
	}
}

func TestYAMLKeepsTypes(t *testing.T) {
	var b bytes.Buffer
	err := writeYAML(&b, []byte(`{"b":"yes","a":"12","t":"2026-12-04T18:00:00Z","n":null,"x":1.50,"l":[],"s":"plain"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "b: \"yes\"\na: \"12\"\nt: \"2026-12-04T18:00:00Z\"\n\"n\": null\nx: 1.50\nl: []\ns: plain\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if err := writeYAML(&b, []byte("not json")); err == nil {
		t.Error("not JSON accepted")
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{Usagef("x"), 2},
		{&adminclient.APIError{Status: 404}, 3},
		{&adminclient.APIError{Status: 401}, 4},
		{&adminclient.APIError{Status: 403}, 4},
		{&adminclient.APIError{Status: 409}, 5},
		{&adminclient.APIError{Status: 500}, 1},
		{&adminclient.UnreachableError{}, 1},
		{&reportedError{&adminclient.APIError{Status: 503}}, 1},
	}
	for _, tc := range cases {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%#v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
