package oip

import "encoding/json"

// The REST wire: the OIP v2 JSON infer request and response, and Triton's
// binary tensor extension, in which a tensor's data leaves the JSON and
// follows it in the body as raw bytes (see raw.go), the JSON's length being
// sent in the Inference-Header-Content-Length header.
//
// JSON representation of data, per datatype (decoding and encoding agree, so
// whatever EncodeRESTResponse writes, the decoders read back unchanged, NaN
// payloads aside):
//
//   - BOOL: true / false.
//   - Integer types: integer literals within the type's range; 1.0, 1e2 and
//     "1" are refused.
//   - FP32, FP64: numbers; NaN and infinities, which JSON numbers cannot
//     express, are the strings "NaN", "Inf" and "-Inf" ("+Inf", "Infinity"
//     and "-Infinity" are also read). A finite number that rounds to an
//     infinity in the datatype is out of range, an error.
//   - FP16: numbers, rounded to the nearest half-precision value (ties to
//     even; values below half the smallest subnormal become ±0), with the
//     same NaN/Inf strings and range rule; written as the shortest decimal
//     that reads back to the same half.
//   - BYTES: strings, their UTF-8 bytes being the element (Triton sends
//     BYTES as strings too). JSON cannot carry arbitrary bytes: in a request,
//     invalid UTF-8 inside a string becomes U+FFFD (as encoding/json
//     decodes it); a response element that is not valid UTF-8 is not
//     mangled but refused: encoding that output as JSON is an error that
//     tells the client to ask for it with "binary_data": true.
//
// Data may be flat or nested in row-major order; nesting is not checked
// against the shape, only the total element count is (as Triton does).

const (
	// HeaderContentLength is the HTTP header that carries the length of the
	// JSON part of a body that has binary tensor data after it.
	HeaderContentLength = "Inference-Header-Content-Length"

	paramBinaryDataSize   = "binary_data_size"
	paramBinaryData       = "binary_data"
	paramBinaryDataOutput = "binary_data_output"
)

// restTensor is an input of a request or an output of a response on the
// wire. Data stays raw until the datatype and shape are known.
type restTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   Datatype        `json:"datatype"`
	Parameters map[string]any  `json:"parameters"`
	Data       json.RawMessage `json:"data"`
	// parsed is Data already converted to the datatype's slice, when the
	// fast envelope decoder could (decodeRequestFast); nil otherwise.
	parsed any
}

type restRequest struct {
	ID         string         `json:"id"`
	Parameters map[string]any `json:"parameters"`
	Inputs     []restTensor   `json:"inputs"`
	Outputs    []restOutput   `json:"outputs"`
}

type restResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id"`
	Parameters   map[string]any `json:"parameters"`
	Outputs      []restTensor   `json:"outputs"`
}

type restOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters"`
}
