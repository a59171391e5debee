// Package feedback decodes the labels clients send for earlier requests
// (POST /v2/models/{model}/feedback): the one body format that the agent
// (agent/monitor) and the collector (collector/labels) accept.
package feedback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/drover-ml/drover/shared/manifest"
)

// Bounds on feedback requests.
const (
	// MaxFeedback is the most labels one request may carry.
	MaxFeedback = 10_000
	// MaxLabelBytes bounds a string label (and a number's text).
	MaxLabelBytes = 1 << 10
	// MaxIDBytes bounds a request id.
	MaxIDBytes = 256
)

// Feedback is the label of one earlier request.
type Feedback struct {
	// Index is the position in the request's array (0 for a single
	// object); errors name it as feedback[Index].
	Index int
	// ID is the request id the label belongs to.
	ID string
	// Label is the label as sent: a string, a json.Number or a bool.
	Label any
}

// Parse decodes a feedback request body: one object
// {"id": "...", "label": ...} or an array of at most MaxFeedback of them.
// An id is a non-empty string of at most MaxIDBytes; a label is a string (at
// most MaxLabelBytes), a number (finite as a float64) or a boolean. Unknown
// fields, null labels and anything after the JSON value are errors. Errors
// name the element ("feedback[3].label: ...") and are the client's fault:
// servers map them to 400. Safe for concurrent use.
func Parse(body []byte) ([]Feedback, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("feedback: body is empty; want an object {\"id\": ..., \"label\": ...} or an array of them")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out []Feedback
	switch body[0] {
	case '{':
		f, err := decodeFeedback(dec, 0)
		if err != nil {
			return nil, err
		}
		out = []Feedback{f}
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("feedback: %w", err)
		}
		for dec.More() {
			if len(out) == MaxFeedback {
				return nil, fmt.Errorf("feedback: more than %d labels in one request", MaxFeedback)
			}
			f, err := decodeFeedback(dec, len(out))
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("feedback: %w", err)
		}
	default:
		return nil, errors.New("feedback: want an object {\"id\": ..., \"label\": ...} or an array of them")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("feedback: unexpected data after the JSON value")
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("feedback: after the JSON value: %w", err)
	}
	return out, nil
}

type rawFeedback struct {
	ID    json.RawMessage `json:"id"`
	Label json.RawMessage `json:"label"`
}

func decodeFeedback(dec *json.Decoder, i int) (Feedback, error) {
	p := fmt.Sprintf("feedback[%d]", i)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return Feedback{}, fmt.Errorf("%s: %w", p, err)
	}
	if raw[0] != '{' {
		return Feedback{}, fmt.Errorf("%s: want an object {\"id\": ..., \"label\": ...}, got %s", p, JSONKind(raw))
	}
	var r rawFeedback
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return Feedback{}, fmt.Errorf("%s: %w", p, err)
	}
	f := Feedback{Index: i}
	switch {
	case len(r.ID) == 0 || string(r.ID) == "null":
		return f, fmt.Errorf("%s.id: is required", p)
	case r.ID[0] != '"':
		return f, fmt.Errorf("%s.id: want a string, got %s", p, JSONKind(r.ID))
	}
	if err := json.Unmarshal(r.ID, &f.ID); err != nil {
		return f, fmt.Errorf("%s.id: %w", p, err)
	}
	switch {
	case f.ID == "":
		return f, fmt.Errorf("%s.id: must not be empty", p)
	case len(f.ID) > MaxIDBytes:
		return f, fmt.Errorf("%s.id: is %d bytes, more than %d", p, len(f.ID), MaxIDBytes)
	}
	if len(r.Label) == 0 || string(r.Label) == "null" {
		return f, fmt.Errorf("%s.label: is required", p)
	}
	label, err := ParseLabel(r.Label)
	if err != nil {
		return f, fmt.Errorf("%s.label: %w", p, err)
	}
	f.Label = label
	return f, nil
}

// ParseLabel decodes one JSON label: a string (at most MaxLabelBytes), a
// json.Number (finite as a float64) or a bool; anything else is an error.
func ParseLabel(raw json.RawMessage) (any, error) {
	// A string may be escaped (\u00e9 is 6 bytes for 2); its decoded length
	// is checked below.
	if len(raw) > 6*MaxLabelBytes+2 || raw[0] != '"' && len(raw) > MaxLabelBytes {
		return nil, fmt.Errorf("is %d bytes, more than %d", len(raw), MaxLabelBytes)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if len(s) > MaxLabelBytes {
			return nil, fmt.Errorf("is %d bytes, more than %d", len(s), MaxLabelBytes)
		}
		return s, nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, err
		}
		return b, nil
	case '{', '[':
		return nil, fmt.Errorf("want a string, number or boolean, got %s", JSONKind(raw))
	}
	n := json.Number(raw)
	f, err := n.Float64()
	if err != nil || !finite(f) {
		return nil, fmt.Errorf("%s is not a finite number", raw)
	}
	return n, nil
}

// JSONKind names the kind of a JSON value for error messages.
func JSONKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// LabelFor converts the label for a model of task (manifest.TaskClassification
// or manifest.TaskRegression). Classification accepts a non-empty string, an
// integer (or a number with an integral value, such as 2.0, below 2^53 in
// magnitude), written in decimal, and a boolean ("1" for true, "0" for
// false); it returns class. Regression accepts a number only; it returns
// value. A label of the wrong type is an error that names the element:
// `feedback[3].label: want a number for a regression model, got "cat"`.
func (f Feedback) LabelFor(task string) (class string, value float64, err error) {
	p := fmt.Sprintf("feedback[%d].label", f.Index)
	switch task {
	case manifest.TaskClassification:
		c, err := ClassOf(f.Label)
		if err != nil {
			return "", 0, fmt.Errorf("%s: %w", p, err)
		}
		return c, 0, nil
	case manifest.TaskRegression:
		if n, ok := f.Label.(json.Number); ok {
			if v, err := n.Float64(); err == nil && finite(v) {
				return "", v, nil
			}
		}
		return "", 0, fmt.Errorf("%s: want a number for a regression model, got %s", p, showLabel(f.Label))
	}
	return "", 0, fmt.Errorf("%s: the model's task %q is neither %q nor %q", p, task, manifest.TaskClassification, manifest.TaskRegression)
}

// ClassOf converts a decoded JSON label (string, json.Number, bool) to a
// class string, as LabelFor does for a classification model.
func ClassOf(label any) (string, error) {
	switch v := label.(type) {
	case string:
		if v == "" {
			return "", errors.New("want a class, got an empty string")
		}
		return v, nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case json.Number:
		if c, ok := integerText(string(v)); ok {
			return c, nil
		}
	}
	return "", fmt.Errorf("want a class (a string, an integer or a boolean) for a classification model, got %s", showLabel(label))
}

// integerText returns the decimal form of a number that is an integer: an
// int64 literal, or a float literal with an integral value below 2^53.
func integerText(s string) (string, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return "", false
	}
	return strconv.FormatInt(int64(f), 10), true
}

func showLabel(label any) string {
	switch v := label.(type) {
	case string:
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		return strconv.Quote(v)
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return strings.TrimSpace(fmt.Sprintf("%T", label))
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
