package evaluate

import (
	"encoding/json"

	"github.com/drover-ml/drover/shared/feedback"
)

// The feedback body format is shared with the collector's feedback
// endpoint (collector/labels); the decoder lives in shared/feedback. These
// names keep the agent's callers unchanged.

// Bounds on feedback requests (shared/feedback).
const (
	MaxFeedback   = feedback.MaxFeedback
	MaxLabelBytes = feedback.MaxLabelBytes
	MaxIDBytes    = feedback.MaxIDBytes
)

// Feedback is the label of one earlier request (feedback.Feedback).
type Feedback = feedback.Feedback

// ParseFeedback decodes a feedback request body: see feedback.Parse.
func ParseFeedback(body []byte) ([]Feedback, error) { return feedback.Parse(body) }

func parseLabel(raw json.RawMessage) (any, error) { return feedback.ParseLabel(raw) }

func jsonKind(raw []byte) string { return feedback.JSONKind(raw) }

func classOf(label any) (string, error) { return feedback.ClassOf(label) }
