package drift

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigOverridesDefaults(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	iris := c.For("iris")
	if iris.PSIThreshold != 0.25 || iris.ConfirmM != 2 || iris.ConfirmN != 3 || iris.Cooldown != 2*time.Hour {
		t.Errorf("iris override lost: %+v", iris)
	}
	if iris.Window != 30*time.Minute || iris.JSThreshold != 0.1 || iris.Interval != time.Minute {
		t.Errorf("iris did not inherit default and built-ins: %+v", iris)
	}
	if iris.MetricDegradation["f1"] != 0.03 || iris.MetricDegradation["mse"] != 0.1 || iris.MetricDegradation["accuracy"] != 0.05 {
		t.Errorf("iris metric_degradation = %v, want merged f1 0.03, mse 0.1, accuracy 0.05", iris.MetricDegradation)
	}
	if f := c.For("fraud"); f.Reference != ReferenceManifest || f.MinSamples != 500 || f.PSIThreshold != 0.2 {
		t.Errorf("fraud = %+v", f)
	}
	if o := c.For("other"); o.Window != 30*time.Minute || o.Reference != ReferenceFirstWindow || o.MinSamples != 1000 ||
		o.ConfirmM != 3 || o.ConfirmN != 5 || o.Cooldown != 6*time.Hour || o.ErrorRate != 0.05 || o.P99Ratio != 2 || o.DatasetShare != 0.5 {
		t.Errorf("model without override = %+v", o)
	}
	// For must not share maps between policies.
	c.For("iris").MetricDegradation["f1"] = 9
	if c.For("iris").MetricDegradation["f1"] != 0.03 || c.For("other").MetricDegradation["f1"] != 0.03 {
		t.Error("For returned a shared map")
	}
	var empty Config
	if err := empty.Validate(); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestBadConfigs(t *testing.T) {
	want := map[string][]string{
		"threshold.bad.yaml": {"policies.iris.psi_threshold: must be > 0"},
		"confirm.bad.yaml": {
			"default.confirm_m: must be in [1, confirm_n=5]",
			"policies.iris.confirm_m: must be in [1, confirm_n=5]",
			`policies.iris.reference: "yesterday": want first_window or manifest`,
			"policies.iris.js_threshold: must be in (0, 1]",
		},
		"unknown.bad.yaml":  {"field psi not found"},
		"duration.bad.yaml": {"an hour"},
		"interval.bad.yaml": {
			"policies.iris.interval: 2h0m0s must not be longer than the window 1h0m0s",
			"policies.iris.p99_ratio: must be > 1",
			"policies.iris.metric_degradation.f1: must be > 0",
		},
	}
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(want) {
		t.Errorf("%d bad files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseConfig(data)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range want[filepath.Base(f)] {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
