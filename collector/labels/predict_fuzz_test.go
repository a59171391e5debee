package labels

import (
	"math"
	"testing"
)

// FuzzPredict: the outputs of a sample (sent by any OTLP sender) never
// make the prediction reader panic, and a prediction it returns is usable.
func FuzzPredict(f *testing.F) {
	for _, seed := range []string{
		`{"outputs":[{"name":"label","datatype":"INT64","shape":[2],"data":[1,2]}]}`,
		`{"outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["cat"]}]}`,
		`{"outputs":[{"name":"p","datatype":"FP32","shape":[2,3],"data":[0.1,0.8,0.1,0.5,0.2,0.3]}]}`,
		`{"outputs":[{"name":"y","datatype":"FP64","shape":[1,1],"data":[3.5]}]}`,
		`{"outputs":[{"name":"p","datatype":"FP32","shape":[1,9223372036854775807],"data":[1,2]}]}`,
		`{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":["NaN"]}]}`,
		`{"outputs":[{"name":"label","datatype":"BOOL","shape":[1],"data":[{}]}]}`,
		`[]`, ``,
	} {
		f.Add(seed, 0)
		f.Add(seed, 1)
	}
	f.Fuzz(func(t *testing.T, outputs string, i int) {
		task, class, value, ok := predict(outputs, i)
		if !ok {
			return
		}
		switch task {
		case taskClassification:
			if class == "" {
				t.Fatalf("classification with an empty class from %q", outputs)
			}
		case taskRegression:
			if math.IsNaN(value) || math.IsInf(value, 0) {
				t.Fatalf("regression value %v from %q", value, outputs)
			}
		default:
			t.Fatalf("task %q", task)
		}
	})
}
