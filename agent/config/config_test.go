package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTestdata(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if strings.HasSuffix(name, ".good.yaml") {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, line := range strings.Split(string(b), "\n") {
				if want, ok := strings.CutPrefix(line, "# error: "); ok && !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestValues(t *testing.T) {
	b, err := os.ReadFile("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.RequestTimeout != 5*time.Second || c.Serving.MaxBatch != 64 || c.Watch.Debounce != 50*time.Millisecond {
		t.Errorf("serving/watch = %+v %+v", c.Serving, c.Watch)
	}
	p := c.Policies()
	if p["iris"].String() != "latest" || p["fraud"].Latest != 2 || len(p["price"].Specific) != 2 {
		t.Errorf("policies = %+v", p)
	}
	// Defaults survive a file that does not mention them.
	c, err = Parse([]byte("models: {iris: {policy: latest}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.MaxInFlight != Default().Serving.MaxInFlight || c.Runtime.IntraOpThreads != 1 {
		t.Errorf("defaults lost: %+v", c)
	}
}
