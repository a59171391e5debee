package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// logLimit bounds what is kept of each of a command's stdout and stderr.
const logLimit = 64 << 10

// resultPrefix starts the stdout line by which a command reports the
// version it published.
const resultPrefix = "DROVER_RESULT_VERSION="

// outcome is the result of one attempt.
type outcome struct {
	state         string // StateSucceeded, StateFailed or StateTimedOut
	exitCode      int32
	resultVersion uint64
	err           string // why it failed; empty on success
	log           string // output tails
	report        string // the built-in optimizer's report (JSON), stored in jobs.report
	permanent     bool   // a failure that retrying cannot cure: no retry
}

// executor runs one attempt of a job. Execute returns when the attempt is
// over or ctx is done (then the outcome is discarded).
type executor interface {
	Execute(ctx context.Context, spec Spec) outcome
}

// commandExecutor runs a program with the spec on stdin and in DROVER_*
// variables.
type commandExecutor struct {
	argv    []*template.Template
	dir     string
	timeout time.Duration
	env     []string
	grace   time.Duration // how long Wait may wait for the output after a kill
}

func newCommandExecutor(c CommandConfig) (*commandExecutor, error) {
	e := &commandExecutor{dir: c.Dir, timeout: c.Timeout, grace: 5 * time.Second}
	for i, a := range c.Argv {
		t, err := template.New(fmt.Sprintf("argv[%d]", i)).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("command.argv[%d]: %w", i, err)
		}
		e.argv = append(e.argv, t)
	}
	for k, v := range c.Env {
		e.env = append(e.env, k+"="+v)
	}
	return e, nil
}

func (e *commandExecutor) Execute(ctx context.Context, spec Spec) outcome {
	argv := make([]string, len(e.argv))
	for i, t := range e.argv {
		var b strings.Builder
		if err := t.Execute(&b, spec); err != nil {
			return outcome{state: StateFailed, exitCode: -1, err: fmt.Sprintf("expand %s: %v", t.Name(), err)}
		}
		argv[i] = b.String()
	}
	in, _ := json.Marshal(spec)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.dir
	cmd.Stdin = bytes.NewReader(in)
	stdout, stderr := &tail{limit: logLimit, scan: true}, &tail{limit: logLimit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(append(os.Environ(), e.env...),
		"DROVER_JOB_ID="+spec.ID,
		"DROVER_MODEL="+spec.Model,
		"DROVER_MODEL_VERSION="+spec.Version,
		"DROVER_INCIDENT_START="+spec.IncidentStart.UTC().Format(time.RFC3339Nano),
		"DROVER_MODEL_STORE="+spec.ModelStore,
		"DROVER_CLICKHOUSE_DSN="+spec.ClickHouseDSN,
		"DROVER_DATA_START="+spec.DataWindow.Start.UTC().Format(time.RFC3339Nano),
		"DROVER_DATA_END="+spec.DataWindow.End.UTC().Format(time.RFC3339Nano),
		"DROVER_ATTEMPT="+strconv.Itoa(spec.Attempt),
		"DROVER_PUBLISH_URL="+spec.PublishURL,
		"DROVER_PUBLISH_TOKEN="+spec.PublishToken,
	)
	// Its own process group, so that a timeout kills whatever it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = e.grace
	if err := cmd.Start(); err != nil {
		return outcome{state: StateFailed, exitCode: -1, err: fmt.Sprintf("start %s: %v", argv[0], err)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(e.timeout)
	defer timer.Stop()
	kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var err error
	timedOut := false
	select {
	case err = <-done:
	case <-timer.C:
		timedOut = true
		kill()
		err = <-done
	case <-ctx.Done():
		kill()
		<-done
		return outcome{state: StateFailed, exitCode: -1, err: "aborted: " + context.Cause(ctx).Error()}
	}
	o := outcome{log: logText(stdout, stderr)}
	if cmd.ProcessState != nil {
		o.exitCode = int32(cmd.ProcessState.ExitCode())
	}
	switch {
	case timedOut:
		o.state, o.exitCode = StateTimedOut, -1
		o.err = fmt.Sprintf("timed out after %s; process group killed", e.timeout)
	case err != nil:
		o.state = StateFailed
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			o.exitCode = -1
		}
		o.err = fmt.Sprintf("%s: %v", argv[0], err)
	default:
		o.state = StateSucceeded
		if v, ok := stdout.result(); ok {
			o.resultVersion = v
		} else {
			o.resultVersion = newestVersion(spec.ModelStore, spec.Model, spec.Version)
		}
	}
	return o
}

// newestVersion returns the highest integer version directory in
// <root>/<model>/ that is above serving, or 0 if there is none.
func newestVersion(root, model, serving string) uint64 {
	if root == "" {
		return 0
	}
	floor, _ := strconv.ParseUint(serving, 10, 64)
	entries, err := os.ReadDir(filepath.Join(root, model))
	if err != nil {
		return 0
	}
	var best uint64
	for _, e := range entries {
		v, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.IsDir() || v <= floor {
			continue
		}
		best = max(best, v)
	}
	return best
}

func logText(stdout, stderr *tail) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		t    *tail
	}{{"stdout", stdout}, {"stderr", stderr}} {
		if s.t.total == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s", s.name)
		if s.t.total > int64(len(s.t.buf)) {
			fmt.Fprintf(&b, " (last %d of %d bytes)", len(s.t.buf), s.t.total)
		}
		b.WriteString(" ---\n")
		b.Write(s.t.buf)
		if len(s.t.buf) > 0 && s.t.buf[len(s.t.buf)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// tail keeps the last limit bytes written to it and, with scan, the last
// DROVER_RESULT_VERSION line of all that was written. exec copies into it
// from one goroutine, and it is read after Wait.
type tail struct {
	limit int
	buf   []byte
	total int64

	scan    bool
	line    []byte // the current partial line, up to 256 bytes
	long    bool   // the current line is longer than that
	version uint64
	found   bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	if t.scan {
		for _, c := range p {
			if c == '\n' {
				t.endLine()
				continue
			}
			if len(t.line) < 256 {
				t.line = append(t.line, c)
			} else {
				t.long = true
			}
		}
	}
	return len(p), nil
}

func (t *tail) endLine() {
	if !t.long {
		s := strings.TrimSpace(string(t.line))
		if v, ok := strings.CutPrefix(s, resultPrefix); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
				t.version, t.found = n, true
			}
		}
	}
	t.line, t.long = t.line[:0], false
}

// result returns the version of the last DROVER_RESULT_VERSION line.
func (t *tail) result() (uint64, bool) {
	if len(t.line) > 0 {
		t.endLine() // a last line without newline
	}
	return t.version, t.found
}
