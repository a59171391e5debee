package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// render writes an answer in the chosen format: -o json the body exactly
// as the API sent it (indented), -o yaml the same document as YAML, and a
// table through table.
func (a *App) render(raw []byte, table func(w *writer)) error {
	switch a.Opts.Output {
	case OutputJSON:
		return writeJSON(a.Out, raw)
	case OutputYAML:
		return writeYAML(a.Out, raw)
	}
	w := &writer{out: a.Out, color: a.color()}
	table(w)
	return w.err
}

// writeJSON indents raw without re-encoding it: fields, their order and
// number literals are the API's.
func writeJSON(out io.Writer, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("the collector's answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := out.Write(buf.Bytes())
	return err
}

// writeYAML writes the JSON document raw as YAML, keeping its key order,
// nulls and number literals.
func writeYAML(out io.Writer, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if !json.Valid(raw) {
		return fmt.Errorf("the collector's answer is not JSON")
	}
	// JSON is YAML: the node tree keeps every key in order; only the
	// JSON styles (quotes, flow) are dropped.
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("convert answer to YAML: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("convert answer to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("convert answer to YAML: %w", err)
	}
	_, err := out.Write(buf.Bytes())
	return err
}

// blockStyle clears the JSON styles of a node tree. The encoder quotes a
// string again where it would otherwise read as another type; the words
// YAML 1.1 reads as booleans stay quoted for older parsers.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		switch strings.ToLower(n.Value) {
		case "y", "yes", "n", "no", "on", "off":
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// Colours of cells.
type color int

const (
	plain color = iota
	green
	yellow
	red
	faint
)

func (c color) wrap(s string) string {
	code := map[color]string{green: "32", yellow: "33", red: "31", faint: "2"}[c]
	if code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// cell is a table cell: text and its colour.
type cell struct {
	text  string
	color color
}

// writer renders the human view: tables, "key: value" blocks and lines.
// It remembers the first write error.
type writer struct {
	out   io.Writer
	color bool
	err   error
}

func (w *writer) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.out, format, args...)
	}
}

// table writes rows under headers, columns two spaces apart and padded by
// the text's width (colour codes do not count). Columns listed in
// optional are left out when every row has "-" in them.
func (w *writer) table(headers []string, rows [][]cell, optional ...int) {
	keep := make([]bool, len(headers))
	for i := range keep {
		keep[i] = true
	}
	for _, c := range optional {
		empty := true
		for _, r := range rows {
			empty = empty && r[c].text == "-"
		}
		keep[c] = !empty
	}
	width := make([]int, len(headers))
	for i, h := range headers {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c.text))
		}
	}
	line := func(cells []cell) {
		var b strings.Builder
		last := -1
		for i := range cells {
			if keep[i] {
				last = i
			}
		}
		for i, c := range cells {
			if !keep[i] {
				continue
			}
			text := c.text
			if w.color {
				text = c.color.wrap(text)
			}
			b.WriteString(text)
			if i < last {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		w.printf("%s\n", b.String())
	}
	hs := make([]cell, len(headers))
	for i, h := range headers {
		hs[i] = cell{text: h}
	}
	line(hs)
	for _, r := range rows {
		line(r)
	}
}

// fields writes "key: value" lines with the values aligned.
func (w *writer) fields(kv [][2]string) {
	n := 0
	for _, p := range kv {
		n = max(n, len(p[0]))
	}
	for _, p := range kv {
		w.printf("%-*s  %s\n", n+1, p[0]+":", p[1])
	}
}

// Formatting of values for tables: "-" for null.

const timeLayout = "2006-01-02 15:04:05Z07:00"

func c(s string) cell { return cell{text: s} }

func str(p *string) string {
	if p == nil || *p == "" {
		return "-"
	}
	return *p
}

func tm(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

func tmp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return tm(*t)
}

func u64(p *uint64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatUint(*p, 10)
}

func intp[T int | int32](p *T) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatInt(int64(*p), 10)
}

// num formats a float rounded to prec decimals, without trailing zeros.
func num(p *float64, prec int) string {
	if p == nil {
		return "-"
	}
	scale := math.Pow10(prec)
	return strconv.FormatFloat(math.Round(*p*scale)/scale, 'f', -1, 64)
}

// pct formats a rate (0.0123) as a percentage (1.23%).
func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p*100, 'f', 2, 64) + "%"
}

func ms(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64) + "ms"
}

func list[T any](xs []T) string {
	if len(xs) == 0 {
		return "-"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

// stateColor colours states: good green, in progress yellow, bad red.
func stateColor(state string) color {
	switch state {
	case "alive", "serving", "succeeded", "resolved", "active", "converged", "online":
		return green
	case "suspect", "queued", "running", "canary", "open", "pending":
		return yellow
	case "dead", "failed", "timed_out", "rejected", "revoked", "offline":
		return red
	case "left", "cancelled", "retired":
		return faint
	}
	return plain
}

func stateCell(state string) cell {
	if state == "" {
		return c("-")
	}
	return cell{text: state, color: stateColor(state)}
}
