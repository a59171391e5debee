package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/shared/manifest"
)

// PublishFlags are the flags of droverctl publish.
type PublishFlags struct {
	Message, Author string
	// Parent is the version this one derives from; 0 for none.
	Parent uint64
	// TrainingData is a CSV with a header row; Label its label column.
	TrainingData, Label string
	// Job is the re-optimization job that made the version (lineage.job,
	// source optimize): a command job passes $DROVER_JOB_ID, and the
	// version becomes the job's result.
	Job string
}

func parseVersion(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, Usagef("version %q: want a positive integer", s)
	}
	return v, nil
}

func checkModel(model string) error {
	if !manifest.ValidName(model) {
		return Usagef("model name %q: letters, digits, '.', '_' and '-', starting with a letter or digit", model)
	}
	return nil
}

// Publish uploads the files of dir as a new version of model and prints
// the version: "iris: published version 5" or, when the same content is
// already a version, "iris: already published as version 3 (same
// content)". A progress bar goes to stderr when it is a terminal.
func (a *App) Publish(ctx context.Context, model, dir string, f PublishFlags) error {
	if err := checkModel(model); err != nil {
		return err
	}
	if (f.TrainingData == "") != (f.Label == "") {
		return Usagef("--training-data and --label go together")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return Usagef("%s: not a directory", dir)
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	bar := a.progressBar()
	res, m, err := cl.Publish(ctx, model, dir, adminclient.PublishOptions{
		Message: f.Message, Author: f.Author, Parent: f.Parent, Job: f.Job,
		TrainingData: f.TrainingData, Label: f.Label, Progress: bar.update,
	})
	bar.finish()
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) { publishLine(w, model, res) })
}

func publishLine(w *writer, model string, res *adminclient.PublishResult) {
	if res.Created {
		w.printf("%s: published version %d (content %s)\n", model, res.Version, short(res.ContentID))
		return
	}
	w.printf("%s: already published as version %d (same content %s)\n", model, res.Version, short(res.ContentID))
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// VersionShow shows one version's record: who published it, when, why,
// its parents, signature and files.
func (a *App) VersionShow(ctx context.Context, model, n string) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	rec, m, err := cl.Version(ctx, model, v)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) { recordView(w, rec) })
}

func recordView(w *writer, rec *adminclient.VersionRecord) {
	state := rec.State
	if w.color {
		state = stateColor(state).wrap(state)
	}
	w.fields([][2]string{
		{"model", rec.Model},
		{"version", strconv.FormatUint(rec.Version, 10)},
		{"state", state},
		{"content", rec.ContentID},
		{"created", tm(rec.Created)},
		{"author", str(rec.Author)},
		{"message", str(rec.Message)},
		{"parents", list(rec.Parents)},
		{"source", orDash(rec.Source)},
		{"incident", str(rec.Incident)},
		{"job", str(rec.Job)},
		{"signature", signatureText(rec.Signature)},
		{"updated", tm(rec.Updated)},
	})
	w.printf("\nfiles:\n")
	rows := make([][]cell, 0, len(rec.Files))
	for _, f := range rec.Files {
		rows = append(rows, []cell{c(f.Path), c(strconv.FormatInt(f.Size, 10)), c(f.SHA256)})
	}
	w.table([]string{"PATH", "SIZE", "SHA256"}, rows)
}

// signatureText shows a signature as "x FP32[-1,4] → label INT64[-1], ...".
func signatureText(raw json.RawMessage) string {
	type tensor struct {
		Name     string  `json:"name"`
		Datatype string  `json:"datatype"`
		Shape    []int64 `json:"shape"`
	}
	var sig struct{ Inputs, Outputs []tensor }
	if json.Unmarshal(raw, &sig) != nil || (sig.Inputs == nil && sig.Outputs == nil) {
		return jsonText(raw)
	}
	side := func(ts []tensor) string {
		parts := make([]string, len(ts))
		for i, t := range ts {
			dims := make([]string, len(t.Shape))
			for j, d := range t.Shape {
				dims[j] = strconv.FormatInt(d, 10)
			}
			parts[i] = t.Name + " " + t.Datatype + "[" + strings.Join(dims, ",") + "]"
		}
		return strings.Join(parts, ", ")
	}
	return side(sig.Inputs) + " → " + side(sig.Outputs)
}

// VersionDelete deletes a version. A version in use is refused (exit 5,
// the collector's reason on stderr).
func (a *App) VersionDelete(ctx context.Context, model, n string) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	rec, m, err := cl.DeleteVersion(ctx, model, v)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) { w.printf("%s: version %d %s\n", rec.Model, rec.Version, rec.State) })
}

// Merge makes a new version of model that averages versions n1 and n2
// with weights ("0.5,0.5"; "" for equal weights) and prints it as publish
// does.
func (a *App) Merge(ctx context.Context, model, n1, n2, weights, message string) error {
	v1, err := parseVersion(n1)
	if err != nil {
		return err
	}
	v2, err := parseVersion(n2)
	if err != nil {
		return err
	}
	req := adminclient.MergeRequest{Versions: []uint64{v1, v2}, Message: message}
	if weights != "" {
		parts := strings.Split(weights, ",")
		if len(parts) != 2 {
			return Usagef("--weights %q: want two numbers, like 0.7,0.3", weights)
		}
		for _, p := range parts {
			w, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || w < 0 {
				return Usagef("--weights %q: want two numbers ≥ 0, like 0.7,0.3", weights)
			}
			req.Weights = append(req.Weights, w)
		}
		if req.Weights[0]+req.Weights[1] <= 0 {
			return Usagef("--weights %q: the sum must be positive", weights)
		}
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	res, m, err := cl.Merge(ctx, model, req)
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) { publishLine(w, model, res) })
}

// Pull downloads version n of model into dir (written as dir.tmp, then
// renamed; running it again resumes). -o json prints the version's record.
func (a *App) Pull(ctx context.Context, model, n, dir string) error {
	v, err := parseVersion(n)
	if err != nil {
		return err
	}
	cl, err := a.Client()
	if err != nil {
		return err
	}
	bar := a.progressBar()
	rec, m, err := cl.Pull(ctx, model, v, dir, adminclient.PullOptions{Progress: bar.update})
	bar.finish()
	if err != nil {
		return err
	}
	return a.render(m.Raw, func(w *writer) {
		var size int64
		for _, f := range rec.Files {
			size += f.Size
		}
		w.printf("%s: version %d pulled into %s (%d files, %d bytes)\n", rec.Model, rec.Version, dir, len(rec.Files), size)
	})
}

// progress draws a progress bar on stderr when stderr is a terminal;
// otherwise it draws nothing.
type progress struct {
	w     io.Writer
	last  time.Time
	phase string
	drawn bool
}

func (a *App) progressBar() *progress {
	p := &progress{}
	term := a.IsTerminal
	if term == nil {
		term = isCharDevice
	}
	if a.Err != nil && term(a.Err) {
		p.w = a.Err
	}
	return p
}

func isCharDevice(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// update redraws the bar at most 10 times a second, and at the end of
// each phase.
func (p *progress) update(phase string, done, total int64) {
	if p == nil || p.w == nil {
		return
	}
	now := time.Now()
	if phase == p.phase && done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	if phase != p.phase && p.drawn {
		fmt.Fprintln(p.w)
	}
	p.phase, p.last, p.drawn = phase, now, true
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%-8s [%s%s] %5.1f%%  %s / %s", phase, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		frac*100, bytesText(done), bytesText(total))
}

func (p *progress) finish() {
	if p != nil && p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}
