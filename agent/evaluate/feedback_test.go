package evaluate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/manifest"
)

func TestParseFeedback(t *testing.T) {
	tests := map[string]struct {
		body string
		want []Feedback
	}{
		"one object": {
			body: `{"id": "r1", "label": "cat"}`,
			want: []Feedback{{Index: 0, ID: "r1", Label: "cat"}},
		},
		"array of every label type": {
			body: ` [{"id":"a","label":3}, {"label":2.5,"id":"b"}, {"id":"c","label":true}, {"id":"d","label":"x"}] `,
			want: []Feedback{
				{Index: 0, ID: "a", Label: json.Number("3")},
				{Index: 1, ID: "b", Label: json.Number("2.5")},
				{Index: 2, ID: "c", Label: true},
				{Index: 3, ID: "d", Label: "x"},
			},
		},
		"empty array": {body: `[]`, want: nil},
		"escaped string at the limit": {
			body: `{"id":"a","label":"` + strings.Repeat(`\u00e9`, MaxLabelBytes/2) + `"}`,
			want: []Feedback{{ID: "a", Label: strings.Repeat("é", MaxLabelBytes/2)}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFeedback([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestParseFeedbackErrors(t *testing.T) {
	many := "[" + strings.Repeat(`{"id":"a","label":1},`, MaxFeedback) + `{"id":"a","label":1}]`
	tests := map[string]struct{ body, want string }{
		"empty":               {``, "feedback: body is empty"},
		"not an object":       {`"x"`, "feedback: want an object"},
		"bad JSON":            {`{"id": "a",`, "feedback[0]: unexpected EOF"},
		"trailing data":       {`{"id":"a","label":1} {"id":"b","label":2}`, "unexpected data after the JSON value"},
		"trailing garbage":    {`[{"id":"a","label":1}] x`, "feedback: after the JSON value"},
		"element not object":  {`[{"id":"a","label":1}, 3]`, "feedback[1]: want an object"},
		"unknown field":       {`[{"id":"a","label":1,"lable":2}]`, `feedback[0]: json: unknown field "lable"`},
		"missing id":          {`{"label":1}`, "feedback[0].id: is required"},
		"numeric id":          {`{"id":7,"label":1}`, "feedback[0].id: want a string, got a number"},
		"empty id":            {`{"id":"","label":1}`, "feedback[0].id: must not be empty"},
		"long id":             {`{"id":"` + strings.Repeat("x", MaxIDBytes+1) + `","label":1}`, "feedback[0].id: is 257 bytes, more than 256"},
		"missing label":       {`[{"id":"a","label":1},{"id":"b"}]`, "feedback[1].label: is required"},
		"null label":          {`{"id":"a","label":null}`, "feedback[0].label: is required"},
		"object label":        {`{"id":"a","label":{"x":1}}`, "feedback[0].label: want a string, number or boolean, got an object"},
		"array label":         {`{"id":"a","label":[1]}`, "feedback[0].label: want a string, number or boolean, got an array"},
		"huge string label":   {`{"id":"a","label":"` + strings.Repeat("x", MaxLabelBytes+1) + `"}`, "feedback[0].label: is 1025 bytes, more than 1024"},
		"huge escaped label":  {`{"id":"a","label":"` + strings.Repeat(`\u00e9`, MaxLabelBytes/2+1) + `"}`, "feedback[0].label: is 1026 bytes, more than 1024"},
		"huge number":         {`{"id":"a","label":1` + strings.Repeat("0", MaxLabelBytes) + `}`, "feedback[0].label: is 1025 bytes, more than 1024"},
		"number out of range": {`{"id":"a","label":1e400}`, "feedback[0].label: 1e400 is not a finite number"},
		"too many":            {many, fmt.Sprintf("feedback: more than %d labels in one request", MaxFeedback)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseFeedback([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseFeedback = %v, %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
}

func TestLabelFor(t *testing.T) {
	const (
		cls = manifest.TaskClassification
		reg = manifest.TaskRegression
	)
	tests := map[string]struct {
		label     any
		task      string
		wantClass string
		wantValue float64
		wantErr   string
	}{
		"class string":            {label: "cat", task: cls, wantClass: "cat"},
		"class integer":           {label: json.Number("3"), task: cls, wantClass: "3"},
		"class negative zero":     {label: json.Number("-0"), task: cls, wantClass: "0"},
		"class integral float":    {label: json.Number("2.0"), task: cls, wantClass: "2"},
		"class exponent":          {label: json.Number("1e2"), task: cls, wantClass: "100"},
		"class big integer":       {label: json.Number("9007199254740993"), task: cls, wantClass: "9007199254740993"},
		"class true":              {label: true, task: cls, wantClass: "1"},
		"class false":             {label: false, task: cls, wantClass: "0"},
		"class fraction":          {label: json.Number("2.5"), task: cls, wantErr: "feedback[4].label: want a class (a string, an integer or a boolean) for a classification model, got 2.5"},
		"class huge float":        {label: json.Number("1e300"), task: cls, wantErr: "got 1e300"},
		"class empty string":      {label: "", task: cls, wantErr: "feedback[4].label: want a class, got an empty string"},
		"regression number":       {label: json.Number("-1.25"), task: reg, wantValue: -1.25},
		"regression integer":      {label: json.Number("7"), task: reg, wantValue: 7},
		"regression string":       {label: "cat", task: reg, wantErr: `feedback[4].label: want a number for a regression model, got "cat"`},
		"regression numeric text": {label: "3", task: reg, wantErr: `want a number for a regression model, got "3"`},
		"regression bool":         {label: true, task: reg, wantErr: "want a number for a regression model, got true"},
		"unknown task":            {label: "x", task: "ranking", wantErr: `feedback[4].label: the model's task "ranking" is neither`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := Feedback{Index: 4, ID: "r", Label: tc.label}
			class, value, err := f.LabelFor(tc.task)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LabelFor = %q, %v, %v; want error %q", class, value, err, tc.wantErr)
				}
				return
			}
			if err != nil || class != tc.wantClass || value != tc.wantValue {
				t.Errorf("LabelFor = %q, %v, %v; want %q, %v", class, value, err, tc.wantClass, tc.wantValue)
			}
		})
	}
}

// Labels parsed from a body convert as the server would use them.
func TestParseFeedbackThenLabel(t *testing.T) {
	fs, err := ParseFeedback([]byte(`[{"id":"a","label":1},{"id":"b","label":"1"},{"id":"c","label":"cat"}]`))
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, f := range fs {
		c, _, err := f.LabelFor(manifest.TaskClassification)
		if err != nil {
			t.Fatal(err)
		}
		classes = append(classes, c)
	}
	if !reflect.DeepEqual(classes, []string{"1", "1", "cat"}) {
		t.Errorf("classes = %q", classes)
	}
	_, _, err = fs[2].LabelFor(manifest.TaskRegression)
	if want := `feedback[2].label: want a number for a regression model, got "cat"`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func FuzzParseFeedback(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","label":"cat"}`,
		`[{"id":"a","label":1},{"id":"b","label":2.5},{"id":"c","label":true}]`,
		`[]`, `{}`, `[{"id":"a"}]`, `{"id":"a","label":null}`, `{"id":"a","label":{"x":[1]}}`,
		`{"id":"\u00e9","label":"\ud800"}`, `[1,2,3]`, `{"id":"a","label":1e999}`, `[{"id":"a","label":-0}] x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fs, err := ParseFeedback(body)
		if err != nil {
			return
		}
		if len(fs) > MaxFeedback {
			t.Fatalf("%d labels", len(fs))
		}
		for i, fb := range fs {
			if fb.Index != i || fb.ID == "" || len(fb.ID) > MaxIDBytes {
				t.Fatalf("bad feedback %d: %+v", i, fb)
			}
			switch l := fb.Label.(type) {
			case string:
				if len(l) > MaxLabelBytes {
					t.Fatalf("label of %d bytes", len(l))
				}
			case json.Number, bool:
			default:
				t.Fatalf("label of type %T", fb.Label)
			}
			_, _, _ = fb.LabelFor(manifest.TaskClassification)
			_, _, _ = fb.LabelFor(manifest.TaskRegression)
		}
	})
}
