// Package docs_test checks the YAML examples in docs/*.md and README.md
// against the real loaders, so that an example an operator copies is one
// the programs accept. It is a test-only package: it may import both the
// agent's and the collector's configuration without production code doing
// so.
//
// Every ```yaml block starts with a marker comment saying what it is:
//
//	# collector.yaml             a drover-collector configuration file
//	# agent.yaml                 a drover-agent configuration file
//	# drover.yaml                a version manifest (shared/manifest)
//	# SECTION: (collector.yaml)  a section of a collector file, without its key
//	# SECTION: (agent.yaml)      a section of an agent file, without its key
//	# not Drover config ...      Kubernetes and the like: not checked
//
// A block without a marker, or one that fails to load or validate, fails
// the test. Certificate files an example names under /etc/drover/tls/ are
// made for the test (the loaders read them).
package docs_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	agentconfig "github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/collector/server"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/tlsconfig/tlstest"
)

// block is one fenced yaml block of a Markdown file.
type block struct {
	file string
	line int // of the opening fence
	text string
}

var (
	fenceRE   = regexp.MustCompile("^\\s*```")
	yamlRE    = regexp.MustCompile("^\\s*```\\s*(yaml|yml)\\s*$")
	sectionRE = regexp.MustCompile(`^# ([a-z_]+): \((collector|agent)\.yaml\)\s*$`)
)

// yamlBlocks returns the yaml blocks of a Markdown file.
func yamlBlocks(t *testing.T, file string) []block {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out     []block
		in, isY bool
		cur     block
		body    []string
	)
	for i, l := range strings.Split(string(data), "\n") {
		switch {
		case !in && fenceRE.MatchString(l):
			in, isY = true, yamlRE.MatchString(l)
			cur, body = block{file: file, line: i + 1}, nil
		case in && fenceRE.MatchString(l):
			if isY {
				cur.text = strings.Join(body, "\n") + "\n"
				out = append(out, cur)
			}
			in = false
		case in:
			body = append(body, l)
		}
	}
	if in {
		t.Errorf("%s: a code block opened at line %d is never closed", file, cur.line)
	}
	return out
}

// markdownFiles are the files whose examples are checked.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/*.md (%v)", err)
	}
	return append(files, "../README.md")
}

func TestYAMLExamples(t *testing.T) {
	n := 0
	for _, f := range markdownFiles(t) {
		for _, b := range yamlBlocks(t, f) {
			n++
			t.Run(fmt.Sprintf("%s:%d", filepath.Base(b.file), b.line), func(t *testing.T) {
				if err := check(t, b.text); err != nil {
					t.Errorf("%s:%d: %v", b.file, b.line, err)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no yaml blocks found: the scan is broken")
	}
}

// tlsDir is where the examples' TLS files live; tlsFileRE finds them.
const tlsDir = "/etc/drover/tls/"

var tlsFileRE = regexp.MustCompile(regexp.QuoteMeta(tlsDir) + `([A-Za-z0-9_.-]+)`)

// withTLSFiles returns text with the TLS files it names under tlsDir made
// in a directory of the test: a file whose name ends in ca.crt is a CA
// certificate, any other NAME.crt or NAME.key a certificate for NAME and
// its key, signed by that CA.
func withTLSFiles(t *testing.T, text string) string {
	names := tlsFileRE.FindAllStringSubmatch(text, -1)
	if len(names) == 0 {
		return text
	}
	ca := tlstest.NewCA(t, "docs")
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range names {
		name := m[1]
		if strings.HasSuffix(name, "ca.crt") {
			copyFile(ca.File, name)
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(name, ".crt"), ".key")
		cert, key := ca.Issue(t, base, "localhost")
		copyFile(cert, base+".crt")
		copyFile(key, base+".key")
	}
	return strings.ReplaceAll(text, tlsDir, dir+"/")
}

// check loads and validates one block as its marker says.
func check(t *testing.T, text string) error {
	text = withTLSFiles(t, text)
	marker, _, _ := strings.Cut(text, "\n")
	marker = strings.TrimSpace(marker)
	switch {
	case marker == "# collector.yaml":
		return checkCollector(t, text)
	case marker == "# agent.yaml":
		_, err := agentconfig.Parse([]byte(text))
		return err
	case marker == "# drover.yaml":
		_, err := manifest.Parse([]byte(text))
		return err
	case strings.HasPrefix(marker, "# not Drover config"):
		return nil
	}
	m := sectionRE.FindStringSubmatch(marker)
	if m == nil {
		return fmt.Errorf("the block does not start with a marker (# collector.yaml, # agent.yaml, # drover.yaml, # SECTION: (collector.yaml), # not Drover config); it starts with %q", marker)
	}
	// A section: put it under its key in a file of its own.
	var doc strings.Builder
	doc.WriteString(m[1] + ":\n")
	for l := range strings.Lines(text) {
		doc.WriteString("  " + l)
	}
	if m[2] == "agent" {
		_, err := agentconfig.Parse([]byte(doc.String()))
		return err
	}
	return checkCollector(t, doc.String())
}

// checkCollector loads and validates a collector file. The gossip key file
// an example names lives on the operator's machine: it is replaced by a
// valid key written for the test (Validate reads it).
func checkCollector(t *testing.T, text string) error {
	cfg, err := server.Parse([]byte(text))
	if err != nil {
		return err
	}
	if cfg.Cluster.KeyFile != "" {
		key := filepath.Join(t.TempDir(), "gossip.key")
		if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Cluster.KeyFile = key
	}
	return cfg.Validate()
}

// TestMarkersAreChecked: the checker fails what it must fail, so a passing
// TestYAMLExamples means something.
func TestMarkersAreChecked(t *testing.T) {
	for name, text := range map[string]string{
		"no marker":          "data_dir: x\n",
		"unknown marker":     "# config.yaml\ndata_dir: x\n",
		"bad collector":      "# collector.yaml\nwriter: {batch_rows: 0}\n",
		"unknown field":      "# collector.yaml\ncolour: blue\n",
		"bad section":        "# jobs: (collector.yaml)\nmax_concurrent: 0\n",
		"bad agent":          "# agent.yaml\nserving: {max_batch: 0}\n",
		"bad agent section":  "# telemetry: (agent.yaml)\nprotocol: http\n",
		"bad manifest":       "# drover.yaml\nmodel: iris\n",
		"collector as agent": "# agent.yaml\ndata_dir: x\n",
	} {
		if err := check(t, text); err == nil {
			t.Errorf("%s: accepted %q", name, text)
		}
	}
	for name, text := range map[string]string{
		"collector": "# collector.yaml\nadmin: {addr: \":7070\"}\ncluster: {key_file: /etc/drover/gossip.key}\n",
		"section":   "# jobs: (collector.yaml)\nretries: 1\n",
		"agent":     "# agent.yaml\n",
		"k8s":       "# not Drover config (Kubernetes)\napiVersion: v1\n",
	} {
		if err := check(t, text); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	blocks := yamlBlocks(t, writeMarkdown(t, "text\n```yaml\n# agent.yaml\n```\n\n```sh\nls\n```\n  ```yml\nx: 1\n  ```\n"))
	if len(blocks) != 2 || blocks[0].line != 2 || blocks[0].text != "# agent.yaml\n" || blocks[1].text != "x: 1\n" {
		t.Errorf("yamlBlocks = %+v", blocks)
	}
}

func writeMarkdown(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.md")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
