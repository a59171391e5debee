package drift

import (
	"os"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
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
	if f := c.For("fraud"); f.Reference != ReferenceManifest || f.MinSamples != 500 || f.MinLabels != 20 || f.MinRequests != 1000 || f.PSIThreshold != 0.2 {
		t.Errorf("fraud = %+v", f)
	}
	if want := (Limits{MaxModels: 1000, MaxVersionsPerModel: 4, MaxOpenIncidentsPerModel: 1, ForgetAfter: 2 * time.Hour}); c.Limits != want {
		t.Errorf("limits = %+v, want %+v", c.Limits, want)
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
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	if p := d.For("any"); p.Interval != time.Minute || p.Cooldown != 6*time.Hour || p.MetricDegradation["accuracy"] != 0.05 {
		t.Errorf("DefaultConfig().For = %+v", p)
	}
}

// TestExplicitValuesAreLiteral: a 0 that means something (no cooldown) is
// kept, not replaced by the inherited value; an empty file and an empty
// section keep every default.
func TestExplicitValuesAreLiteral(t *testing.T) {
	c, err := ParseConfig([]byte("default: {cooldown: 0s}\npolicies:\n  iris: {cooldown: 1h}\n  fraud: {}\n  price:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.For("other").Cooldown; got != 0 {
		t.Errorf("default cooldown = %s, want the explicit 0", got)
	}
	if got := c.For("fraud").Cooldown; got != 0 {
		t.Errorf("fraud cooldown = %s, want the default's explicit 0", got)
	}
	if got := c.For("price").Cooldown; got != 0 {
		t.Errorf("price (empty entry) cooldown = %s, want the default's explicit 0", got)
	}
	if got := c.For("iris").Cooldown; got != time.Hour {
		t.Errorf("iris cooldown = %s, want 1h", got)
	}
	for _, doc := range []string{"", "default:\n", "policies: {}\n"} {
		c, err := ParseConfig([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if p := c.For("x"); p.PSIThreshold != 0.2 || p.ConfirmN != 5 || p.Cooldown != 6*time.Hour {
			t.Errorf("%q: For = %+v, want the defaults", doc, p)
		}
	}
}

func TestBadConfigs(t *testing.T) {
	testenv.BadConfigs(t, "testdata/*.bad.yaml", func(path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = ParseConfig(data)
		return err
	})
}
