package export

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

// classifierOps are the ai.onnx.ml operators whose classlabels_* attribute
// names a classifier's classes.
var classifierOps = map[string]bool{
	"LinearClassifier": true, "TreeEnsembleClassifier": true, "SVMClassifier": true,
}

// ReadSignature reads what an export must keep from a serving graph: its
// one input (FLOAT or DOUBLE, [N, features]; Features is 0 when the
// feature dimension is not fixed), and either a classifier's outputs (a
// label tensor of INT64, STRING or another integer type, the class labels
// from the classifier node's classlabels_ints / classlabels_strings or, when
// it has none, the ZipMap's, and a probabilities output that is a ZipMap's
// sequence of maps or a FLOAT/DOUBLE [N, K] tensor) or a regressor's (one
// FLOAT or DOUBLE tensor of rank 1 or 2). Graphs it cannot read — several
// inputs, other types, outputs it cannot classify, labels it cannot find —
// are clear errors. The graph is not modified; the returned Signature
// shares its output declarations.
func ReadSignature(m *onnx.ModelProto) (*Signature, error) {
	g := m.GetGraph()
	if g == nil {
		return nil, errors.New("read signature: the model has no graph")
	}
	sig := &Signature{IRVersion: m.GetIrVersion()}
	sig.OpsetVersion, _ = onnx.OpsetVersion(m, "ai.onnx")
	sig.MLOpsetVersion, _ = onnx.OpsetVersion(m, MLDomain)

	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var ins []*onnx.ValueInfoProto
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			ins = append(ins, v)
		}
	}
	if len(ins) != 1 {
		return nil, fmt.Errorf("read signature: the graph has %d inputs; the optimizer learns models with one [N, features] input", len(ins))
	}
	in := ins[0]
	dt, ok := onnx.TensorElemType(in)
	if !ok || (dt != onnx.TensorProto_FLOAT && dt != onnx.TensorProto_DOUBLE) {
		return nil, fmt.Errorf("read signature: input %q is %s, not a FLOAT or DOUBLE tensor", in.GetName(), typeName(in))
	}
	shape, ok := onnx.TensorShape(in)
	if !ok || len(shape) != 2 {
		return nil, fmt.Errorf("read signature: input %q has shape %v; the optimizer needs [N, features]", in.GetName(), shape)
	}
	sig.Input, sig.InputType, sig.InputInfo = in.GetName(), dt, in
	sig.Features = int(max(shape[1], 0))

	producer := map[string]*onnx.NodeProto{}
	var classifier, zipmap *onnx.NodeProto
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
		if n.GetDomain() != MLDomain {
			continue
		}
		switch {
		case classifierOps[n.GetOpType()] && classifier == nil:
			classifier = n
		case n.GetOpType() == "ZipMap" && zipmap == nil:
			zipmap = n
		}
	}
	sig.Outputs = g.GetOutput()

	if classifier == nil && zipmap == nil {
		return readRegression(sig, g)
	}
	sig.Task = learn.Classification
	for _, src := range []*onnx.NodeProto{classifier, zipmap} {
		ints, strs, found := classLabels(src)
		if found {
			sig.ClassInts, sig.ClassStrings = ints, strs
			break
		}
	}
	if sig.Classes() < 2 {
		return nil, fmt.Errorf("read signature: the classifier names %d class labels; at least 2 are needed", sig.Classes())
	}
	for _, o := range g.GetOutput() {
		if o.GetType().GetSequenceType() != nil {
			n := producer[o.GetName()]
			if n == nil || n.GetOpType() != "ZipMap" || sig.ProbOutput != "" {
				return nil, fmt.Errorf("read signature: output %q is a sequence not made by one ZipMap", o.GetName())
			}
			sig.ProbOutput, sig.ZipMap = o.GetName(), true
			continue
		}
		dt, ok := onnx.TensorElemType(o)
		if !ok {
			return nil, fmt.Errorf("read signature: output %q is %s, neither a tensor nor a ZipMap's sequence", o.GetName(), typeName(o))
		}
		rank, ok := onnx.TensorRank(o)
		if !ok {
			rank = 0
		}
		switch {
		case (dt == onnx.TensorProto_FLOAT || dt == onnx.TensorProto_DOUBLE) && sig.ProbOutput == "" && (rank == 2 || rank == 0):
			sig.ProbOutput, sig.ProbType = o.GetName(), dt
		case isLabelType(dt) && sig.LabelOutput == "" && rank <= 2:
			sig.LabelOutput, sig.LabelType, sig.LabelRank = o.GetName(), dt, max(rank, 1)
		default:
			return nil, fmt.Errorf("read signature: classifier output %q (%s of rank %d) is neither its label nor its probabilities", o.GetName(), dt, rank)
		}
	}
	if sig.LabelOutput == "" {
		return nil, errors.New("read signature: the classifier has no label output")
	}
	if (sig.LabelType == onnx.TensorProto_STRING) != (len(sig.ClassStrings) > 0) {
		return nil, fmt.Errorf("read signature: label output %q is %s but the class labels are %s", sig.LabelOutput, sig.LabelType, labelKind(sig))
	}
	return sig, nil
}

func readRegression(sig *Signature, g *onnx.GraphProto) (*Signature, error) {
	sig.Task = learn.Regression
	if len(g.GetOutput()) != 1 {
		return nil, fmt.Errorf("read signature: the graph has %d outputs and no classifier; a regressor has one", len(g.GetOutput()))
	}
	o := g.GetOutput()[0]
	dt, ok := onnx.TensorElemType(o)
	if !ok || (dt != onnx.TensorProto_FLOAT && dt != onnx.TensorProto_DOUBLE) {
		return nil, fmt.Errorf("read signature: output %q is %s; a regressor's is a FLOAT or DOUBLE tensor (and no classifier node names class labels)", o.GetName(), typeName(o))
	}
	rank, ok := onnx.TensorRank(o)
	if !ok {
		rank = 2
	}
	if rank != 1 && rank != 2 {
		return nil, fmt.Errorf("read signature: output %q has rank %d; a regressor's is [N] or [N, 1]", o.GetName(), rank)
	}
	sig.ValueOutput, sig.ValueType, sig.ValueRank = o.GetName(), dt, rank
	return sig, nil
}

// classLabels returns a node's classlabels_ints / classlabels_int64s or
// classlabels_strings.
func classLabels(n *onnx.NodeProto) (ints []int64, strs []string, ok bool) {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "classlabels_ints", "classlabels_int64s":
			if len(a.GetInts()) > 0 {
				return slices.Clone(a.GetInts()), nil, true
			}
		case "classlabels_strings":
			if len(a.GetStrings()) > 0 {
				for _, s := range a.GetStrings() {
					strs = append(strs, string(s))
				}
				return nil, strs, true
			}
		}
	}
	return nil, nil, false
}

func isLabelType(dt onnx.TensorProto_DataType) bool {
	switch dt {
	case onnx.TensorProto_INT64, onnx.TensorProto_INT32, onnx.TensorProto_STRING:
		return true
	}
	return false
}

func labelKind(sig *Signature) string {
	if len(sig.ClassStrings) > 0 {
		return "strings"
	}
	return "integers"
}

// typeName describes a value's type for an error message.
func typeName(v *onnx.ValueInfoProto) string {
	t := v.GetType()
	switch {
	case t.GetTensorType() != nil:
		return "a " + onnx.TensorProto_DataType(t.GetTensorType().GetElemType()).String() + " tensor"
	case t.GetSequenceType() != nil:
		return "a sequence"
	case t.GetMapType() != nil:
		return "a map"
	}
	return "of no known type"
}

// Family names DetectFamily returns.
const (
	FamilyLogistic      = "logistic_regression"
	FamilyRidge         = "ridge"
	FamilyDecisionTree  = "decision_tree"
	FamilyRandomForest  = "random_forest"
	FamilyGradientBoost = "gradient_boosting"
)

// DetectFamily names the model family of a serving graph written by
// skl2onnx (or alike): a LinearClassifier (after an optional Scaler or
// Normalizer) is logistic_regression; a LinearRegressor is ridge (linear
// and ridge regression cannot be told apart; ridge's grid also covers
// alpha near 0); a tree ensemble (TreeEnsembleClassifier/Regressor, or
// ai.onnx.ml 5's TreeEnsemble) is decision_tree when it has one tree,
// gradient_boosting when it has base values, a LOGISTIC or SOFTMAX post
// transform, or sums its trees' outputs (a regressor's SUM aggregation),
// and random_forest otherwise (averaged trees). Any other graph is an
// error naming the operators found.
func DetectFamily(m *onnx.ModelProto) (string, error) {
	g := m.GetGraph()
	if g == nil {
		return "", errors.New("detect family: the model has no graph")
	}
	var ops []string
	seen := map[string]bool{}
	var linearClf, linearReg, tree *onnx.NodeProto
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			op = n.GetDomain() + "." + op
		}
		if !seen[op] {
			seen[op] = true
			ops = append(ops, op)
		}
		if n.GetDomain() != MLDomain {
			continue
		}
		switch n.GetOpType() {
		case "LinearClassifier":
			linearClf = n
		case "LinearRegressor":
			linearReg = n
		case "TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble":
			if tree == nil {
				tree = n
			}
		}
	}
	switch {
	case tree != nil:
		return treeFamily(tree), nil
	case linearClf != nil:
		return FamilyLogistic, nil
	case linearReg != nil:
		return FamilyRidge, nil
	}
	if len(ops) == 0 {
		return "", errors.New("detect family: the graph has no operators")
	}
	return "", fmt.Errorf("detect family: no LinearClassifier, LinearRegressor or TreeEnsemble operator; the graph has %s", strings.Join(ops, ", "))
}

// treeFamily tells a single tree, a boosted ensemble and a forest apart.
func treeFamily(n *onnx.NodeProto) string {
	trees := map[int64]bool{}
	boosted := false
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "nodes_treeids":
			for _, t := range a.GetInts() {
				trees[t] = true
			}
		case "tree_roots": // TreeEnsemble (ai.onnx.ml 5)
			for i := range a.GetInts() {
				trees[int64(i)] = true
			}
		case "base_values", "base_values_as_tensor":
			if len(a.GetFloats()) > 0 || a.GetT() != nil {
				boosted = true
			}
		case "post_transform":
			switch {
			case string(a.GetS()) == "LOGISTIC", string(a.GetS()) == "SOFTMAX":
				boosted = true
			case a.GetType() == onnx.AttributeProto_INT && (a.GetI() == 1 || a.GetI() == 2 || a.GetI() == 3):
				boosted = true // TreeEnsemble's SOFTMAX(1), LOGISTIC(2), SOFTMAX_ZERO(3)
			}
		case "aggregate_function":
			// TreeEnsembleRegressor's "SUM" (the default is SUM, too, so
			// only the explicit AVERAGE says forest); TreeEnsemble's 1 is SUM.
			if string(a.GetS()) == "SUM" || (a.GetType() == onnx.AttributeProto_INT && a.GetI() == 1) {
				boosted = true
			}
		}
	}
	switch {
	case len(trees) == 1:
		return FamilyDecisionTree
	case boosted:
		return FamilyGradientBoost
	}
	return FamilyRandomForest
}
