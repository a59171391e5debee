package labels

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/drover-ml/drover/shared/feedback"
)

// Metrics are the evaluation metrics of one model version computed from
// labels joined with its sampled requests.
type Metrics struct {
	// Task is "classification" or "regression" (see Evaluate), empty when
	// no joined label could be scored.
	Task string
	// N is the number of joined labels scored; Skipped those that could
	// not be (no usable output, or a label of the wrong type).
	N, Skipped int
	// Values: accuracy and f1 (classification), mse and mae (regression).
	Values map[string]float64
}

// Evaluate computes the metrics of each version from joined labels.
//
// The prediction is read from the sample's outputs (the OIP response's
// "outputs" array), element Element of the batch:
//   - classification, when an output holds labels (datatype BOOL, BYTES or
//     an integer type): that output's element, as a class text (an integer
//     in decimal, a boolean as "1" or "0"); else, when an FP output has
//     shape [N, C] with C >= 2, the index of the row's highest value (the
//     first on ties) in decimal. The label is converted with
//     feedback.ClassOf.
//     accuracy = correct / N; f1 is the macro F1, the mean over the classes
//     that occur as a label or a prediction of 2·TP / (labels + predictions)
//     of the class (the agent's definition, agent/evaluate).
//   - regression, otherwise, from the first FP output of shape [N] or
//     [N, 1]; the label must be a number. mse and mae are the mean squared
//     and absolute errors.
func Evaluate(js []Joined) map[string]Metrics {
	type acc struct {
		task          string
		n, skipped    int
		correct       int
		conf          map[[2]string]int
		sqErr, absErr float64
	}
	by := map[string]*acc{}
	for _, j := range js {
		a := by[j.Version]
		if a == nil {
			a = &acc{conf: map[[2]string]int{}}
			by[j.Version] = a
		}
		task, class, value, ok := predict(j.Outputs, j.Element)
		label, err := parseStored(j.Label)
		if !ok || err != nil {
			a.skipped++
			continue
		}
		if a.task == "" {
			a.task = task
		}
		if task != a.task {
			a.skipped++
			continue
		}
		switch task {
		case taskClassification:
			lc, err := feedback.ClassOf(label)
			if err != nil {
				a.skipped++
				continue
			}
			a.n++
			a.conf[[2]string{lc, class}]++
			if lc == class {
				a.correct++
			}
		default:
			num, isNum := label.(json.Number)
			lv, err := num.Float64()
			if !isNum || err != nil {
				a.skipped++
				continue
			}
			a.n++
			d := value - lv
			a.sqErr += d * d
			a.absErr += math.Abs(d)
		}
	}
	out := make(map[string]Metrics, len(by))
	for v, a := range by {
		m := Metrics{N: a.n, Skipped: a.skipped, Values: map[string]float64{}}
		if a.n > 0 {
			m.Task = a.task
			if a.task == taskClassification {
				m.Values["accuracy"] = float64(a.correct) / float64(a.n)
				m.Values["f1"] = MacroF1(a.conf)
			} else {
				m.Values["mse"] = a.sqErr / float64(a.n)
				m.Values["mae"] = a.absErr / float64(a.n)
			}
		}
		out[v] = m
	}
	return out
}

const (
	taskClassification = "classification"
	taskRegression     = "regression"
)

// MacroF1 is the mean over the classes that occur in conf (keyed by
// {label, prediction}) of 2·TP / (labels + predictions).
func MacroF1(conf map[[2]string]int) float64 {
	tp, nLabel, nPred := map[string]int{}, map[string]int{}, map[string]int{}
	for k, n := range conf {
		nLabel[k[0]] += n
		nPred[k[1]] += n
		if k[0] == k[1] {
			tp[k[0]] += n
		}
	}
	classes := map[string]bool{}
	for c := range nLabel {
		classes[c] = true
	}
	for c := range nPred {
		classes[c] = true
	}
	if len(classes) == 0 {
		return 0
	}
	var sum float64
	for _, c := range slices.Sorted(maps.Keys(classes)) {
		if d := nLabel[c] + nPred[c]; d > 0 {
			sum += 2 * float64(tp[c]) / float64(d)
		}
	}
	return sum / float64(len(classes))
}

type tensor struct {
	Name     string            `json:"name"`
	Datatype string            `json:"datatype"`
	Shape    []int64           `json:"shape"`
	Data     []json.RawMessage `json:"data"`
}

func isLabelType(d string) bool {
	switch d {
	case "BOOL", "BYTES", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
		return true
	}
	return false
}

func isFloat(d string) bool { return d == "FP16" || d == "FP32" || d == "FP64" }

// predict reads element i's prediction from an OIP response's outputs; see
// Evaluate.
func predict(outputs string, i int) (task, class string, value float64, ok bool) {
	if i < 0 {
		return "", "", 0, false
	}
	var resp struct {
		Outputs []tensor `json:"outputs"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(outputs)))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return "", "", 0, false
	}
	for _, t := range resp.Outputs {
		if isLabelType(t.Datatype) && i < len(t.Data) {
			v, err := feedback.ParseLabel(t.Data[i])
			if err != nil {
				return "", "", 0, false
			}
			c, err := feedback.ClassOf(v)
			return taskClassification, c, 0, err == nil
		}
	}
	for _, t := range resp.Outputs {
		if isFloat(t.Datatype) && len(t.Shape) == 2 && t.Shape[1] >= 2 {
			if t.Shape[1] > int64(len(t.Data)) {
				return "", "", 0, false
			}
			cols := int(t.Shape[1])
			if i >= len(t.Data)/cols {
				return "", "", 0, false
			}
			best, bv := -1, math.Inf(-1)
			for c := range cols {
				f, err := strconv.ParseFloat(string(t.Data[i*cols+c]), 64)
				if err == nil && f > bv {
					best, bv = c, f
				}
			}
			return taskClassification, strconv.Itoa(best), 0, best >= 0
		}
	}
	for _, t := range resp.Outputs {
		if isFloat(t.Datatype) && (len(t.Shape) == 1 || len(t.Shape) == 2 && t.Shape[1] == 1) && i < len(t.Data) {
			f, err := strconv.ParseFloat(string(t.Data[i]), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return "", "", 0, false
			}
			return taskRegression, "", f, true
		}
	}
	return "", "", 0, false
}

// String renders m for logs.
func (m Metrics) String() string { return fmt.Sprintf("%s n=%d %v", m.Task, m.N, m.Values) }
