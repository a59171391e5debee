package tree

import (
	"errors"
	"fmt"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

// ensemble collects a TreeEnsemble node's attributes as skl2onnx lays them
// out: one entry per node in nodes_*, one per (leaf, class or target)
// weight in class_* / target_*.
type ensemble struct {
	treeIDs, nodeIDs, featureIDs, trueIDs, falseIDs, missing []int64
	values, hitrates                                         []float64
	modes                                                    []string
	wTrees, wNodes, wIDs                                     []int64
	weights                                                  []float64
}

// addTree appends tree t as tree id; leaf(i, emit) emits the weights of
// leaf i.
func (e *ensemble) addTree(id int64, t *tree, leaf func(i int, emit func(class int64, w float64))) {
	for i := range t.nodes() {
		e.treeIDs = append(e.treeIDs, id)
		e.nodeIDs = append(e.nodeIDs, int64(i))
		e.missing = append(e.missing, 0)
		e.hitrates = append(e.hitrates, 1)
		if f := t.feature[i]; f >= 0 {
			e.featureIDs = append(e.featureIDs, int64(f))
			e.values = append(e.values, float64(t.threshold[i]))
			e.modes = append(e.modes, "BRANCH_LEQ")
			e.trueIDs = append(e.trueIDs, int64(t.left[i]))
			e.falseIDs = append(e.falseIDs, int64(t.right[i]))
			continue
		}
		e.featureIDs = append(e.featureIDs, 0)
		e.values = append(e.values, 0)
		e.modes = append(e.modes, "LEAF")
		e.trueIDs = append(e.trueIDs, 0)
		e.falseIDs = append(e.falseIDs, 0)
		leaf(i, func(class int64, w float64) {
			e.wTrees = append(e.wTrees, id)
			e.wNodes = append(e.wNodes, int64(i))
			e.wIDs = append(e.wIDs, class)
			e.weights = append(e.weights, w)
		})
	}
}

func (e *ensemble) nodeAttrs() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{
		onnx.IntsAttr("nodes_treeids", e.treeIDs...),
		onnx.IntsAttr("nodes_nodeids", e.nodeIDs...),
		onnx.IntsAttr("nodes_featureids", e.featureIDs...),
		export.FloatsAttr("nodes_values", e.values),
		onnx.StringsAttr("nodes_modes", e.modes...),
		onnx.IntsAttr("nodes_truenodeids", e.trueIDs...),
		onnx.IntsAttr("nodes_falsenodeids", e.falseIDs...),
		onnx.IntsAttr("nodes_missing_value_tracks_true", e.missing...),
		export.FloatsAttr("nodes_hitrates", e.hitrates),
	}
}

// classifierNode returns a TreeEnsembleClassifier reading in and writing
// prefix+"label" and prefix+"probabilities".
func (e *ensemble) classifierNode(in, prefix string, sig *export.Signature, postTransform string, base []float64) *onnx.NodeProto {
	attrs := append(e.nodeAttrs(),
		onnx.IntsAttr("class_treeids", e.wTrees...),
		onnx.IntsAttr("class_nodeids", e.wNodes...),
		onnx.IntsAttr("class_ids", e.wIDs...),
		export.FloatsAttr("class_weights", e.weights),
		export.StringAttr("post_transform", postTransform),
	)
	if len(sig.ClassStrings) > 0 {
		attrs = append(attrs, onnx.StringsAttr("classlabels_strings", sig.ClassStrings...))
	} else {
		attrs = append(attrs, onnx.IntsAttr("classlabels_int64s", sig.ClassInts...))
	}
	if base != nil {
		attrs = append(attrs, export.FloatsAttr("base_values", base))
	}
	return export.MLNode(prefix+"TreeEnsembleClassifier", "TreeEnsembleClassifier", []string{in},
		[]string{prefix + "label", prefix + "probabilities"}, attrs...)
}

// regressorNode returns a TreeEnsembleRegressor (one target, weights
// summed) reading in and writing prefix+"variable".
func (e *ensemble) regressorNode(in, prefix string, base []float64) *onnx.NodeProto {
	attrs := append(e.nodeAttrs(),
		onnx.IntsAttr("target_treeids", e.wTrees...),
		onnx.IntsAttr("target_nodeids", e.wNodes...),
		onnx.IntsAttr("target_ids", e.wIDs...),
		export.FloatsAttr("target_weights", e.weights),
		onnx.IntAttr("n_targets", 1),
		export.StringAttr("aggregate_function", "SUM"),
		export.StringAttr("post_transform", "NONE"),
	)
	if base != nil {
		attrs = append(attrs, export.FloatsAttr("base_values", base))
	}
	return export.MLNode(prefix+"TreeEnsembleRegressor", "TreeEnsembleRegressor", []string{in}, []string{prefix + "variable"}, attrs...)
}

// checkSignature checks that sig describes a model of this task, width
// and number of classes.
func checkSignature(sig *export.Signature, task learn.Task, features, classes int) error {
	if sig == nil {
		return errors.New("no signature")
	}
	if sig.Task != task {
		return fmt.Errorf("the serving model is a %s, this one a %s", sig.Task, task)
	}
	if sig.Features > 0 && sig.Features != features {
		return fmt.Errorf("the serving model takes %d features, this one was trained on %d", sig.Features, features)
	}
	if task != learn.Classification {
		return nil
	}
	switch {
	case len(sig.ClassInts) > 0 && len(sig.ClassStrings) > 0:
		return errors.New("the signature has both integer and string class labels")
	case len(sig.ClassInts) == 0 && len(sig.ClassStrings) == 0:
		return errors.New("the signature has no class labels")
	}
	if n := max(len(sig.ClassInts), len(sig.ClassStrings)); n != classes {
		return fmt.Errorf("the serving model has %d class labels, this one %d classes", n, classes)
	}
	return nil
}

// ExportCore writes the forest as one TreeEnsembleClassifier (leaf weights
// the class distribution divided by the number of trees, so their sum is
// the mean; a binary classifier carries only class 1's weight, as skl2onnx
// writes it, which ONNX Runtime completes to [1-p, p]) or
// TreeEnsembleRegressor (leaf values divided by the number of trees). It
// implements export.Exportable.
func (m *Forest) ExportCore(in, prefix string, sig *export.Signature) (export.Core, error) {
	if err := checkSignature(sig, m.task, m.features, m.classes); err != nil {
		return export.Core{}, fmt.Errorf("export tree ensemble: %w", err)
	}
	var e ensemble
	n := float64(len(m.trees))
	for id, t := range m.trees {
		e.addTree(int64(id), t, func(i int, emit func(int64, float64)) {
			v := t.leafValue(i)
			switch {
			case m.task == learn.Regression:
				emit(0, v[0]/n)
			case m.classes == 2:
				emit(0, v[1]/n)
			default:
				for k, p := range v {
					emit(int64(k), p/n)
				}
			}
		})
	}
	if m.task == learn.Regression {
		node := e.regressorNode(in, prefix, nil)
		return export.Core{Nodes: []*onnx.NodeProto{node}, Value: node.Output[0]}, nil
	}
	node := e.classifierNode(in, prefix, sig, "NONE", nil)
	return export.Core{Nodes: []*onnx.NodeProto{node}, Label: node.Output[0], Probs: node.Output[1]}, nil
}

// ExportCore writes the model as one TreeEnsembleClassifier with the
// initial scores as base_values (binary: one score column, post_transform
// LOGISTIC, which ONNX Runtime writes as [1-p, p]; multinomial: one column
// per class, SOFTMAX) or TreeEnsembleRegressor, leaf weights the learning
// rate times the leaf values, as skl2onnx writes scikit-learn's gradient
// boosting. It implements export.Exportable.
func (m *Boosted) ExportCore(in, prefix string, sig *export.Signature) (export.Core, error) {
	if err := checkSignature(sig, m.task, m.features, m.classes); err != nil {
		return export.Core{}, fmt.Errorf("export gradient boosting: %w", err)
	}
	var e ensemble
	cols := len(m.init)
	for s, stage := range m.stages {
		for k, t := range stage {
			e.addTree(int64(s*cols+k), t, func(i int, emit func(int64, float64)) {
				emit(int64(k), m.rate*t.leafValue(i)[0])
			})
		}
	}
	if m.task == learn.Regression {
		node := e.regressorNode(in, prefix, m.init)
		return export.Core{Nodes: []*onnx.NodeProto{node}, Value: node.Output[0]}, nil
	}
	post := "SOFTMAX"
	if cols == 1 {
		post = "LOGISTIC"
		// When no weight is negative, ONNX Runtime (1.30 checked) takes
		// a binary score for a probability when it picks the label
		// (class 1 when the score exceeds 0.5, not 0): wrong for a
		// boosted model whose leaves happen to be all >= 0 (trees that
		// never split, or a few positive stages). One negligible
		// negative weight (the smallest normal float32, far below the
		// score's precision) keeps the label at the score's sign.
		negative := false
		for _, w := range e.weights {
			negative = negative || float32(w) < 0
		}
		if !negative && len(e.weights) > 0 {
			e.wTrees = append(e.wTrees, e.wTrees[0])
			e.wNodes = append(e.wNodes, e.wNodes[0])
			e.wIDs = append(e.wIDs, 0)
			e.weights = append(e.weights, -minNormalFloat32)
		}
	}
	node := e.classifierNode(in, prefix, sig, post, m.init)
	return export.Core{Nodes: []*onnx.NodeProto{node}, Label: node.Output[0], Probs: node.Output[1]}, nil
}

// minNormalFloat32 is the smallest positive normal float32 (2^-126).
const minNormalFloat32 = 1.1754943508222875e-38
