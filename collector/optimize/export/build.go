package export

import (
	"errors"
	"fmt"

	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

// Opset bounds of the graphs Build writes: ai.onnx and ai.onnx.ml versions
// every ONNX Runtime since 1.16 accepts. A serving graph's versions are
// kept when inside them.
const (
	minOpset   = 9
	maxOpset   = 21
	defOpset   = 15
	maxMLOpset = 3
)

// irForOpset is the lowest IR version that may import each ai.onnx opset.
func irForOpset(v int64) int64 {
	switch {
	case v <= 8:
		return 3
	case v == 9:
		return 4
	case v == 10:
		return 5
	case v == 11:
		return 6
	case v <= 14:
		return 7
	case v <= 18:
		return 8
	case v <= 20:
		return 9
	}
	return 10
}

// Names Build gives the nodes and values it adds; a core's start with its
// prefix, corePrefix.
const corePrefix = "model_"

// Build writes m as a serving graph with sig's signature: the input (of
// sig's name and element type; a DOUBLE input is cast to FLOAT first), the
// model's Core, and outputs with exactly the serving names, element types
// and shapes — for a classifier the label (cast when the serving label is
// another integer type, reshaped to [N, 1] for rank 2) and the
// probabilities (a ZipMap with the class labels when sig.ZipMap, else a
// [N, K] tensor, cast to DOUBLE when served so); for a regressor the value,
// cast and reshaped to the serving type and rank. It imports ai.onnx and
// ai.onnx.ml at versions ONNX Runtime accepts (the serving graph's when
// they are), and the same inputs always give the same model, so its bytes
// (onnx.Marshal) are deterministic.
func Build(m Exportable, sig *Signature, producer string) (*onnx.ModelProto, error) {
	if sig == nil {
		return nil, errors.New("build: no signature")
	}
	if sig.Input == "" {
		return nil, errors.New("build: the signature has no input name")
	}
	g := &onnx.GraphProto{Name: "drover_optimized"}
	in := sig.Input
	switch sig.InputType {
	case onnx.TensorProto_FLOAT:
	case onnx.TensorProto_DOUBLE:
		in = "input_float"
		g.Node = append(g.Node, castNode("cast_input", sig.Input, in, onnx.TensorProto_FLOAT))
	default:
		return nil, fmt.Errorf("build: input %q is %s; FLOAT or DOUBLE inputs are supported", sig.Input, sig.InputType)
	}
	if sig.InputInfo != nil {
		g.Input = []*onnx.ValueInfoProto{sig.InputInfo}
	} else {
		feats := int64(sig.Features)
		if feats <= 0 {
			feats = -1
		}
		g.Input = []*onnx.ValueInfoProto{onnx.TensorValueInfo(sig.Input, sig.InputType, []int64{-1, feats})}
	}
	core, err := m.ExportCore(in, corePrefix, sig)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	g.Node = append(g.Node, core.Nodes...)
	g.Initializer = append(g.Initializer, core.Initializers...)

	var outs []*onnx.ValueInfoProto
	switch sig.Task {
	case learn.Classification:
		if core.Label == "" || core.Probs == "" {
			return nil, errors.New("build: the model's core has no label or probabilities for a classifier")
		}
		if sig.LabelOutput == "" {
			return nil, errors.New("build: the signature has no label output")
		}
		nodes, inits, err := labelNodes(core.Label, sig)
		if err != nil {
			return nil, err
		}
		g.Node, g.Initializer = append(g.Node, nodes...), append(g.Initializer, inits...)
		outs = append(outs, onnx.TensorValueInfo(sig.LabelOutput, labelType(sig), labelShape(sig)))
		if sig.ProbOutput != "" {
			switch {
			case sig.ZipMap:
				labels := onnx.IntsAttr("classlabels_int64s", sig.ClassInts...)
				key := onnx.TensorProto_INT64
				if len(sig.ClassStrings) > 0 {
					labels, key = onnx.StringsAttr("classlabels_strings", sig.ClassStrings...), onnx.TensorProto_STRING
				}
				g.Node = append(g.Node, MLNode("zipmap", "ZipMap", []string{core.Probs}, []string{sig.ProbOutput}, labels))
				outs = append(outs, zipMapValueInfo(sig.ProbOutput, key))
			case sig.ProbType == onnx.TensorProto_DOUBLE:
				g.Node = append(g.Node, castNode("cast_probabilities", core.Probs, sig.ProbOutput, onnx.TensorProto_DOUBLE))
				outs = append(outs, onnx.TensorValueInfo(sig.ProbOutput, onnx.TensorProto_DOUBLE, []int64{-1, int64(sig.Classes())}))
			default:
				g.Node = append(g.Node, onnx.Node("probabilities", "Identity", []string{core.Probs}, []string{sig.ProbOutput}))
				outs = append(outs, onnx.TensorValueInfo(sig.ProbOutput, onnx.TensorProto_FLOAT, []int64{-1, int64(sig.Classes())}))
			}
		}
	case learn.Regression:
		if core.Value == "" {
			return nil, errors.New("build: the model's core has no value for a regressor")
		}
		if sig.ValueOutput == "" {
			return nil, errors.New("build: the signature has no value output")
		}
		vt := sig.ValueType
		if vt == onnx.TensorProto_UNDEFINED {
			vt = onnx.TensorProto_FLOAT
		}
		if vt != onnx.TensorProto_FLOAT && vt != onnx.TensorProto_DOUBLE {
			return nil, fmt.Errorf("build: value output %q is %s; FLOAT or DOUBLE outputs are supported", sig.ValueOutput, vt)
		}
		v, shape := core.Value, []int64{-1, 1}
		if sig.ValueRank == 1 {
			g.Node = append(g.Node, onnx.Node("reshape_value", "Reshape", []string{v, "shape_n"}, []string{"value_n"}))
			g.Initializer = append(g.Initializer, onnx.Int64Tensor("shape_n", []int64{1}, []int64{-1}))
			v, shape = "value_n", []int64{-1}
		}
		if vt == onnx.TensorProto_DOUBLE {
			g.Node = append(g.Node, castNode("cast_value", v, sig.ValueOutput, vt))
		} else {
			g.Node = append(g.Node, onnx.Node("value", "Identity", []string{v}, []string{sig.ValueOutput}))
		}
		outs = append(outs, onnx.TensorValueInfo(sig.ValueOutput, vt, shape))
	default:
		return nil, fmt.Errorf("build: unknown task %v", sig.Task)
	}
	g.Output = orderOutputs(outs, sig.Outputs)

	opset := sig.OpsetVersion
	if opset == 0 {
		opset = defOpset
	}
	opset = min(max(opset, minOpset), maxOpset)
	ml := min(max(sig.MLOpsetVersion, 1), maxMLOpset)
	ml = max(ml, core.MLOpset)
	ir := max(irForOpset(opset), min(sig.IRVersion, 10))
	return onnx.NewModel(g, ir, producer, onnx.Opset("", opset), onnx.Opset(MLDomain, ml)), nil
}

// orderOutputs returns the serving declarations (verbatim) when they name
// the same outputs as built, in the serving order; else built.
func orderOutputs(built, serving []*onnx.ValueInfoProto) []*onnx.ValueInfoProto {
	if len(serving) != len(built) {
		return built
	}
	byName := map[string]bool{}
	for _, o := range built {
		byName[o.GetName()] = true
	}
	for _, o := range serving {
		if !byName[o.GetName()] {
			return built
		}
	}
	return serving
}

func castNode(name, in, out string, to onnx.TensorProto_DataType) *onnx.NodeProto {
	return onnx.Node(name, "Cast", []string{in}, []string{out}, onnx.IntAttr("to", int64(to)))
}

func labelType(sig *Signature) onnx.TensorProto_DataType {
	switch {
	case sig.LabelType != onnx.TensorProto_UNDEFINED:
		return sig.LabelType
	case len(sig.ClassStrings) > 0:
		return onnx.TensorProto_STRING
	}
	return onnx.TensorProto_INT64
}

func labelShape(sig *Signature) []int64 {
	if sig.LabelRank == 2 {
		return []int64{-1, 1}
	}
	return []int64{-1}
}

// labelNodes turn the core's label ([N], INT64 or STRING) into the serving
// label output.
func labelNodes(label string, sig *Signature) ([]*onnx.NodeProto, []*onnx.TensorProto, error) {
	lt := labelType(sig)
	natural := onnx.TensorProto_INT64
	if len(sig.ClassStrings) > 0 {
		natural = onnx.TensorProto_STRING
	}
	if (lt == onnx.TensorProto_STRING) != (natural == onnx.TensorProto_STRING) {
		return nil, nil, fmt.Errorf("build: label output %q is %s but the class labels are %s", sig.LabelOutput, lt, labelKind(sig))
	}
	var nodes []*onnx.NodeProto
	var inits []*onnx.TensorProto
	cur := label
	if sig.LabelRank == 2 {
		nodes = append(nodes, onnx.Node("reshape_label", "Reshape", []string{cur, "shape_n1"}, []string{"label_n1"}))
		inits = append(inits, onnx.Int64Tensor("shape_n1", []int64{2}, []int64{-1, 1}))
		cur = "label_n1"
	}
	if lt != natural {
		nodes = append(nodes, castNode("cast_label", cur, sig.LabelOutput, lt))
	} else {
		nodes = append(nodes, onnx.Node("label", "Identity", []string{cur}, []string{sig.LabelOutput}))
	}
	return nodes, inits, nil
}

// zipMapValueInfo declares a ZipMap's output: a sequence of maps from the
// key type to FLOAT.
func zipMapValueInfo(name string, key onnx.TensorProto_DataType) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{
		Name: name,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_SequenceType{SequenceType: &onnx.TypeProto_Sequence{
			ElemType: &onnx.TypeProto{Value: &onnx.TypeProto_MapType{MapType: &onnx.TypeProto_Map{
				KeyType: int32(key),
				ValueType: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
					ElemType: int32(onnx.TensorProto_FLOAT),
				}}},
			}}},
		}}},
	}
}
