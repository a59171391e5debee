package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		code int
		out  string
	}{
		"version":                 {[]string{"--version"}, 0, "drover-agent"},
		"no model dir":            {nil, 2, "--model-dir is required"},
		"bad log level":           {[]string{"--model-dir", "x", "--log-level", "loud"}, 2, "--log-level"},
		"unknown flag":            {[]string{"--nope"}, 2, "flag provided but not defined"},
		"bad http listen":         {[]string{"--model-dir", t.TempDir(), "--http-addr", "127.0.0.1:99999"}, 1, "listen --http-addr"},
		"bad grpc listen":         {[]string{"--model-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "nowhere:x"}, 1, "listen --grpc-addr"},
		"bad config":              {[]string{"--model-dir", t.TempDir(), "--config", "/nonexistent/agent.yaml"}, 1, "read config"},
		"bad label":               {[]string{"--model-dir", "x", "--label", "zone"}, 2, "want k=v"},
		"collector without token": {[]string{"--model-dir", t.TempDir(), "--collector", "http://c1:8090"}, 1, "control.token_file: required with collectors"},
		"bad collector url":       {[]string{"--model-dir", t.TempDir(), "--collector", "c1:8090", "--token-file", "t"}, 1, "control.collectors[0]: want an http(s) URL"},
		"bad control listen":      {[]string{"--model-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--control-addr", "nowhere:x"}, 1, "listen --control-addr"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if code := realMain(tc.args, &out, &out, nil); code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d, want %d; output %q does not say %q", code, tc.code, out.String(), tc.out)
			}
		})
	}
}

// TestSignals: SIGHUP asks for a reload, SIGTERM stops the agent.
func TestSignals(t *testing.T) {
	stopped := make(chan struct{})
	reload := make(chan struct{}, 1)
	release := handleSignals(func() { close(stopped) }, reload, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer release()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reload:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not ask for a reload")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not stop the agent")
	}
}
