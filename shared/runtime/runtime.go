package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drover-ml/drover/shared/oip"
)

// TensorSpec describes one input or output of a loaded model.
type TensorSpec struct {
	Name     string
	Datatype oip.Datatype
	// Shape uses -1 for dynamic dimensions.
	Shape []int64
	// Classes, for a classifier's probability output that the runtime
	// converted from a sequence of maps (skl2onnx's ZipMap), is the class
	// label of each column.
	Classes []string
}

// Signature is a model's inputs and outputs.
type Signature struct {
	Inputs  []TensorSpec
	Outputs []TensorSpec
}

// Equal reports whether two signatures have the same names, datatypes and
// shapes (class labels are not compared).
func (s Signature) Equal(o Signature) bool {
	eq := func(a, b []TensorSpec) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i].Name != b[i].Name || a[i].Datatype != b[i].Datatype || len(a[i].Shape) != len(b[i].Shape) {
				return false
			}
			for j := range a[i].Shape {
				if a[i].Shape[j] != b[i].Shape[j] {
					return false
				}
			}
		}
		return true
	}
	return eq(s.Inputs, o.Inputs) && eq(s.Outputs, o.Outputs)
}

// Model is a loaded model. Run is safe for concurrent use; Close must be
// called exactly once, after the last Run has returned.
type Model interface {
	// Signature returns the model's inputs and outputs.
	Signature() Signature
	// Info returns descriptive metadata (producer, description, custom
	// metadata of the model file).
	Info() map[string]string
	// Run runs the model. inputs must match the signature (every input, its
	// datatype, rank and static dimensions); outputs names the outputs to
	// return (all when empty). Input problems are *InputError.
	Run(ctx context.Context, inputs []oip.Tensor, outputs []string) ([]oip.Tensor, error)
	// RunBefore is Run that also stops at deadline (zero: none), without a
	// context of its own for it. A run stops within a few milliseconds of
	// its deadline or of ctx's end, with an error that wraps
	// context.DeadlineExceeded or ctx's error.
	RunBefore(ctx context.Context, deadline time.Time, inputs []oip.Tensor, outputs []string) ([]oip.Tensor, error)
	// Close releases the model's resources.
	Close() error
}

// Options configure how models are loaded.
type Options struct {
	// IntraOpThreads and InterOpThreads size ONNX Runtime's thread pools per
	// session; 0 lets ONNX Runtime choose.
	IntraOpThreads int `yaml:"intra_op_threads"`
	InterOpThreads int `yaml:"inter_op_threads"`
}

// Backend loads models from files.
type Backend interface {
	// Load loads the model file at path. It is safe for concurrent use.
	Load(ctx context.Context, path string) (Model, error)
}

// InputError is a problem with the caller's inputs (bad name, datatype or
// shape); servers map it to 400 / InvalidArgument.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// IsInputError reports whether err is an *InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// CheckInputs validates inputs against sig: each input once, known names,
// matching datatype, rank and static dimensions, and data consistent with
// the shape. It returns the inputs in signature order.
func CheckInputs(sig Signature, inputs []oip.Tensor) ([]*oip.Tensor, error) {
	ordered := make([]*oip.Tensor, len(sig.Inputs))
	for i := range inputs {
		in := &inputs[i]
		idx := -1
		for j := range sig.Inputs {
			if sig.Inputs[j].Name == in.Name {
				idx = j
				break
			}
		}
		if idx < 0 {
			return nil, inputErrorf("unexpected input %q; the model's inputs are %s", in.Name, names(sig.Inputs))
		}
		if ordered[idx] != nil {
			return nil, inputErrorf("input %q is given twice", in.Name)
		}
		spec := sig.Inputs[idx]
		if in.Datatype != spec.Datatype {
			return nil, inputErrorf("input %q has datatype %s, the model expects %s", in.Name, in.Datatype, spec.Datatype)
		}
		if len(in.Shape) != len(spec.Shape) {
			return nil, inputErrorf("input %q has shape %v, the model expects rank %d %v", in.Name, in.Shape, len(spec.Shape), spec.Shape)
		}
		for d, want := range spec.Shape {
			if want >= 0 && in.Shape[d] != want {
				return nil, inputErrorf("input %q has shape %v, the model expects %v", in.Name, in.Shape, spec.Shape)
			}
		}
		if err := in.Validate(); err != nil {
			return nil, &InputError{Msg: err.Error()}
		}
		ordered[idx] = in
	}
	for j, in := range ordered {
		if in == nil {
			return nil, inputErrorf("missing input %q", sig.Inputs[j].Name)
		}
	}
	return ordered, nil
}

func names(ts []TensorSpec) string {
	s := "["
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", t.Name)
	}
	return s + "]"
}
