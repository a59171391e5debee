package evaluate

import (
	"slices"
	"testing"

	"github.com/drover-ml/drover/shared/manifest"
)

func TestGate(t *testing.T) {
	res := func(m map[string]float64) Result { return Result{Count: 100, Metrics: m} }
	cur := res(map[string]float64{"f1": 0.80, "accuracy": 0.9, "mse": 0.40, "log_loss": 0.3})
	tests := map[string]struct {
		cand        Result
		current     Result
		haveCurrent bool
		gate        *manifest.Gate
		defaults    *manifest.Gate
		admit       bool
		reasons     []string
		notes       []string
	}{
		"no gate": {
			cand: res(map[string]float64{"f1": 0.1}), current: cur, haveCurrent: true, admit: true,
		},
		"regression within the threshold": {
			cand: res(map[string]float64{"f1": 0.79}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.02}}, admit: true,
		},
		"regression exactly at the threshold": {
			cand: res(map[string]float64{"f1": 0.78}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.02}}, admit: true,
		},
		"regression beyond the threshold": {
			cand: res(map[string]float64{"f1": 0.71}), current: cur, haveCurrent: true,
			gate:    &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.02}},
			reasons: []string{"f1 0.71 is 0.09 below the serving version's 0.8 (max_regression 0.02)"},
		},
		"improvement": {
			cand: res(map[string]float64{"f1": 0.95, "mse": 0.1}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"f1": 0, "mse": 0}}, admit: true,
		},
		"lower-is-better regression": {
			cand: res(map[string]float64{"mse": 0.52, "log_loss": 0.31}), current: cur, haveCurrent: true,
			gate:    &manifest.Gate{MaxRegression: map[string]float64{"mse": 0.05, "log_loss": 0.05}},
			reasons: []string{"mse 0.52 is 0.12 above the serving version's 0.4 (max_regression 0.05)"},
		},
		"lower error is not a regression": {
			cand: res(map[string]float64{"mse": 0.2}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"mse": 0}}, admit: true,
		},
		"floors and ceilings": {
			cand: res(map[string]float64{"accuracy": 0.85, "f1": 0.95, "mse": 0.6, "mae": 0.1}),
			gate: &manifest.Gate{Min: map[string]float64{"accuracy": 0.9, "f1": 0.9, "mse": 0.5, "mae": 0.5}},
			reasons: []string{
				"accuracy 0.85 is below the minimum 0.9",
				"mse 0.6 is above the maximum 0.5 (min is a ceiling for error metrics)",
			},
		},
		"floor met exactly": {
			cand: res(map[string]float64{"accuracy": 0.9}),
			gate: &manifest.Gate{Min: map[string]float64{"accuracy": 0.9}}, admit: true,
		},
		"gated metric missing from the candidate": {
			cand: res(map[string]float64{"accuracy": 0.9}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"auc": 0.01}, Min: map[string]float64{"r2": 0.5}},
			reasons: []string{
				"auc could not be computed on the golden set (max_regression 0.01)",
				"r2 could not be computed on the golden set (min 0.5)",
			},
		},
		"ungated missing metric does not matter": {
			cand: res(map[string]float64{"f1": 0.8}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.01}}, admit: true,
		},
		"no serving version": {
			cand: res(map[string]float64{"f1": 0.5}),
			gate: &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.01}}, admit: true,
			notes: []string{"f1 0.5: no serving version to compare with (max_regression 0.01)"},
		},
		"serving version lacks the metric": {
			cand: res(map[string]float64{"auc": 0.5}), current: cur, haveCurrent: true,
			gate: &manifest.Gate{MaxRegression: map[string]float64{"auc": 0.01}}, admit: true,
			notes: []string{"auc 0.5: the serving version has no auc to compare with (max_regression 0.01)"},
		},
		"manifest overrides defaults per metric": {
			cand: res(map[string]float64{"f1": 0.75, "accuracy": 0.80}), current: cur, haveCurrent: true,
			defaults: &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.01, "accuracy": 0.05}},
			gate:     &manifest.Gate{MaxRegression: map[string]float64{"f1": 0.1}},
			reasons:  []string{"accuracy 0.8 is 0.1 below the serving version's 0.9 (max_regression 0.05)"},
		},
		"defaults alone": {
			cand: res(map[string]float64{"accuracy": 0.5}), defaults: &manifest.Gate{Min: map[string]float64{"accuracy": 0.6}},
			reasons: []string{"accuracy 0.5 is below the minimum 0.6"},
		},
		"unknown metric": {
			cand: res(map[string]float64{"brier": 0.1}), current: cur, haveCurrent: true,
			defaults: &manifest.Gate{MaxRegression: map[string]float64{"brier": 0.1}, Min: map[string]float64{"brier": 0.1}},
			reasons: []string{
				`max_regression names "brier", which is not a metric the gate knows`,
				`min names "brier", which is not a metric the gate knows`,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := Gate(tc.cand, tc.current, tc.haveCurrent, tc.gate, tc.defaults)
			if d.Admit != (len(tc.reasons) == 0) || d.Admit != tc.admit {
				t.Errorf("Admit = %v, want %v", d.Admit, tc.admit)
			}
			if !slices.Equal(d.Reasons, tc.reasons) {
				t.Errorf("Reasons:\n got %q\nwant %q", d.Reasons, tc.reasons)
			}
			if !slices.Equal(d.Notes, tc.notes) {
				t.Errorf("Notes:\n got %q\nwant %q", d.Notes, tc.notes)
			}
		})
	}
}
