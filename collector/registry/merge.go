package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"
)

// ErrSignatureMismatch: the two versions of a merge do not have the same
// inputs and outputs. Permanent.
var ErrSignatureMismatch = errors.New("signature mismatch")

// mlDomain is the classical machine-learning operator set (ZipMap).
const mlDomain = "ai.onnx.ml"

// parent describes the outputs of one model of a merge.
type parent struct {
	g *onnx.GraphProto
	// classifier: a label output and a probability output.
	classifier bool
	label      *onnx.ValueInfoProto // the label output (classifier)
	prob       *onnx.ValueInfoProto // the probability output (classifier)
	// probTensor is the FP32 [N, classes] tensor of probabilities: prob
	// itself, or the input of the ZipMap that produces prob.
	probTensor string
	zipmap     *onnx.NodeProto // the ZipMap producing prob, if any
}

// analyze finds what a parent's outputs are: a classifier (one label
// output, INT64 or STRING of rank 1, and one probability output, FP32 of
// rank 2 or a ZipMap's sequence of maps) or a regression (every output
// an FP32 tensor). Graphs with control flow (subgraph attributes), sparse
// initializers or local functions are refused.
func analyze(m *onnx.ModelProto) (*parent, error) {
	g := m.GetGraph()
	if len(m.GetFunctions()) > 0 {
		return nil, errors.New("models with local functions are not supported")
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, errors.New("models with sparse initializers are not supported")
	}
	producer := map[string]*onnx.NodeProto{}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				return nil, fmt.Errorf("node %s (%s) has a subgraph; control flow is not supported", n.GetName(), n.GetOpType())
			}
		}
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	p := &parent{g: g}
	var floats int
	for _, o := range g.GetOutput() {
		if o.GetType().GetSequenceType() != nil {
			n := producer[o.GetName()]
			if n == nil || n.GetOpType() != "ZipMap" || n.GetDomain() != mlDomain || p.prob != nil {
				return nil, fmt.Errorf("output %s is a sequence not made by one ZipMap", o.GetName())
			}
			p.prob, p.probTensor, p.zipmap = o, n.GetInput()[0], n
			continue
		}
		dt, ok := onnx.TensorElemType(o)
		if !ok {
			return nil, fmt.Errorf("output %s is neither a tensor nor a ZipMap", o.GetName())
		}
		rank, _ := onnx.TensorRank(o)
		switch {
		case dt == onnx.TensorProto_FLOAT:
			floats++
			if rank == 2 && p.prob == nil {
				p.prob, p.probTensor = o, o.GetName()
			}
		case (dt == onnx.TensorProto_INT64 || dt == onnx.TensorProto_STRING) && rank == 1 && p.label == nil:
			p.label = o
		default:
			return nil, fmt.Errorf("output %s: %s tensors are not averaged", o.GetName(), dt)
		}
	}
	switch {
	case p.label != nil && p.prob != nil && len(g.GetOutput()) == 2:
		p.classifier = true
	case p.label == nil && floats == len(g.GetOutput()):
		p.prob, p.probTensor, p.zipmap = nil, "", nil
	default:
		return nil, errors.New("outputs are neither a classifier's (a label and probabilities) nor a regression's (FP32 tensors)")
	}
	return p, nil
}

// sameValue compares two tensor value infos by name, element type and rank.
func sameTensor(a, b *onnx.ValueInfoProto) bool {
	da, oka := onnx.TensorElemType(a)
	db, okb := onnx.TensorElemType(b)
	ra, _ := onnx.TensorRank(a)
	rb, _ := onnx.TensorRank(b)
	return a.GetName() == b.GetName() && oka == okb && da == db && ra == rb
}

// realInputs are a graph's inputs that are not initializers (IR < 4 lists
// initializers among the inputs).
func realInputs(g *onnx.GraphProto) []*onnx.ValueInfoProto {
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var in []*onnx.ValueInfoProto
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			in = append(in, v)
		}
	}
	return in
}

// prefixed returns g's nodes, initializers and value infos with every name
// but the real inputs' (and the empty optional-input name) prefixed, and
// the renaming. It renames g's initializers in place, and must run before
// anything else reads their names.
func prefixed(g *onnx.GraphProto, prefix string, skip func(*onnx.NodeProto) bool) ([]*onnx.NodeProto, []*onnx.TensorProto, []*onnx.ValueInfoProto, func(string) string) {
	keep := map[string]bool{"": true}
	for _, v := range realInputs(g) {
		keep[v.GetName()] = true
	}
	rename := func(n string) string {
		if keep[n] {
			return n
		}
		return prefix + n
	}
	var nodes []*onnx.NodeProto
	for _, n := range g.GetNode() {
		if skip != nil && skip(n) {
			continue
		}
		c := &onnx.NodeProto{
			Name: prefix + n.GetName(), OpType: n.GetOpType(), Domain: n.GetDomain(),
			Attribute: n.GetAttribute(), DocString: n.GetDocString(), Overload: n.GetOverload(),
		}
		for _, x := range n.GetInput() {
			c.Input = append(c.Input, rename(x))
		}
		for _, x := range n.GetOutput() {
			c.Output = append(c.Output, rename(x))
		}
		nodes = append(nodes, c)
	}
	var inits []*onnx.TensorProto
	for _, t := range g.GetInitializer() {
		t.Name = rename(t.GetName()) // in place: the caller's own parse, no copy of the weights
		inits = append(inits, t)
	}
	var infos []*onnx.ValueInfoProto
	for _, v := range g.GetValueInfo() {
		infos = append(infos, &onnx.ValueInfoProto{Name: rename(v.GetName()), Type: v.GetType()})
	}
	return nodes, inits, infos, rename
}

// MergeModels returns one ONNX model that runs models a and b on the same
// inputs and outputs their weighted average: for classifiers the
// probabilities are averaged (on the tensor before a ZipMap, if a parent
// has one) and the label is the class of the highest averaged probability;
// for regressions every output is averaged. The result has a's input and
// output names, types and shapes (a ZipMap output if a has one). wa and wb
// must be ≥ 0 with a positive sum; they are normalised to sum to 1.
//
// a and b must have the same signature (input names, element types and
// ranks; output names and kinds), else the error wraps
// ErrSignatureMismatch; a model that cannot be merged wraps ErrInvalid.
// Labels are class indices unless a ZipMap names the classes (both
// ZipMaps, if both have one, must name the same classes). The merged model
// imports the higher version of each operator set of the two.
func MergeModels(a, b []byte, wa, wb float32) ([]byte, error) {
	if wa < 0 || wb < 0 || wa+wb <= 0 {
		return nil, fmt.Errorf("merge: %w: weights %v, %v must be ≥ 0 with a positive sum", ErrInvalid, wa, wb)
	}
	wa, wb = wa/(wa+wb), wb/(wa+wb)
	ma, err := onnx.Unmarshal(a)
	if err != nil {
		return nil, fmt.Errorf("merge: first model: %w: %w", ErrInvalid, err)
	}
	mb, err := onnx.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("merge: second model: %w: %w", ErrInvalid, err)
	}
	pa, err := analyze(ma)
	if err != nil {
		return nil, fmt.Errorf("merge: first model: %w: %w", ErrInvalid, err)
	}
	pb, err := analyze(mb)
	if err != nil {
		return nil, fmt.Errorf("merge: second model: %w: %w", ErrInvalid, err)
	}
	if err := sameSignature(pa, pb); err != nil {
		return nil, fmt.Errorf("merge: %w: %w", ErrSignatureMismatch, err)
	}

	inputs := realInputs(pa.g) // before prefixed renames initializers
	skipZip := func(p *parent) func(*onnx.NodeProto) bool {
		return func(n *onnx.NodeProto) bool { return p.zipmap != nil && n == p.zipmap }
	}
	nodesA, initsA, infosA, renA := prefixed(pa.g, "a/", skipZip(pa))
	nodesB, initsB, infosB, renB := prefixed(pb.g, "b/", skipZip(pb))
	g := &onnx.GraphProto{
		Name:        "merge",
		Node:        append(nodesA, nodesB...),
		Initializer: append(initsA, initsB...),
		ValueInfo:   append(infosA, infosB...),
		Input:       inputs,
		Output:      pa.g.GetOutput(),
	}
	g.Initializer = append(g.Initializer,
		onnx.FloatTensor("merge/wa", nil, []float32{wa}),
		onnx.FloatTensor("merge/wb", nil, []float32{wb}))
	average := func(x, y, out string) {
		g.Node = append(g.Node,
			onnx.Node("merge/"+out+"/a", "Mul", []string{renA(x), "merge/wa"}, []string{"merge/" + out + "/a"}),
			onnx.Node("merge/"+out+"/b", "Mul", []string{renB(y), "merge/wb"}, []string{"merge/" + out + "/b"}),
			onnx.Node("merge/"+out+"/sum", "Add", []string{"merge/" + out + "/a", "merge/" + out + "/b"}, []string{out}),
		)
	}
	if !pa.classifier {
		for _, o := range pa.g.GetOutput() {
			average(o.GetName(), o.GetName(), o.GetName())
		}
	} else if err := mergeClassifier(g, pa, pb, average); err != nil {
		return nil, fmt.Errorf("merge: %w: %w", ErrInvalid, err)
	}

	opsets := map[string]int64{}
	for _, m := range []*onnx.ModelProto{ma, mb} {
		for _, o := range m.GetOpsetImport() {
			d := o.GetDomain()
			if d == "ai.onnx" {
				d = ""
			}
			opsets[d] = max(opsets[d], o.GetVersion())
		}
	}
	opsets[""] = max(opsets[""], 7) // Mul, Add, ArgMax, Gather
	var imports []*onnx.OperatorSetIdProto
	for _, d := range slices.Sorted(maps.Keys(opsets)) {
		imports = append(imports, onnx.Opset(d, opsets[d]))
	}
	merged := onnx.NewModel(g, max(ma.GetIrVersion(), mb.GetIrVersion()), "drover-merge", imports...)
	return onnx.Marshal(merged)
}

func sameSignature(pa, pb *parent) error {
	ia, ib := realInputs(pa.g), realInputs(pb.g)
	if len(ia) != len(ib) {
		return fmt.Errorf("%d inputs against %d", len(ia), len(ib))
	}
	for i := range ia {
		if !sameTensor(ia[i], ib[i]) {
			return fmt.Errorf("input %d: %s against %s (name, type or rank)", i, ia[i].GetName(), ib[i].GetName())
		}
	}
	if pa.classifier != pb.classifier {
		return errors.New("a classifier and a regression")
	}
	if !pa.classifier {
		oa, ob := pa.g.GetOutput(), pb.g.GetOutput()
		if len(oa) != len(ob) {
			return fmt.Errorf("%d outputs against %d", len(oa), len(ob))
		}
		for i := range oa {
			if !sameTensor(oa[i], ob[i]) {
				return fmt.Errorf("output %d: %s against %s (name, type or rank)", i, oa[i].GetName(), ob[i].GetName())
			}
		}
		return nil
	}
	if !sameTensor(pa.label, pb.label) {
		return fmt.Errorf("label outputs %s and %s differ (name, type or rank)", pa.label.GetName(), pb.label.GetName())
	}
	if pa.prob.GetName() != pb.prob.GetName() {
		return fmt.Errorf("probability outputs %s and %s differ", pa.prob.GetName(), pb.prob.GetName())
	}
	return nil
}

// zipLabels returns the class labels a ZipMap names (int64s or strings).
func zipLabels(n *onnx.NodeProto) (ints []int64, strs []string, ok bool) {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "classlabels_int64s":
			return a.GetInts(), nil, true
		case "classlabels_strings":
			for _, s := range a.GetStrings() {
				strs = append(strs, string(s))
			}
			return nil, strs, true
		}
	}
	return nil, nil, false
}

func mergeClassifier(g *onnx.GraphProto, pa, pb *parent, average func(x, y, out string)) error {
	// The averaged probability tensor.
	const avg, idx = "merge/probabilities", "merge/index"
	average(pa.probTensor, pb.probTensor, avg)
	var (
		ints []int64
		strs []string
		have bool
	)
	for _, p := range []*parent{pa, pb} {
		if p.zipmap == nil {
			continue
		}
		i, s, ok := zipLabels(p.zipmap)
		if !ok {
			return fmt.Errorf("ZipMap %s names no classes", p.zipmap.GetName())
		}
		if have && (!slices.Equal(i, ints) || !slices.Equal(s, strs)) {
			return errors.New("the two ZipMaps name different classes")
		}
		ints, strs, have = i, s, true
	}
	if pa.zipmap != nil {
		z := pa.zipmap
		g.Node = append(g.Node, &onnx.NodeProto{
			Name: "merge/zipmap", OpType: "ZipMap", Domain: mlDomain,
			Input: []string{avg}, Output: []string{pa.prob.GetName()}, Attribute: z.GetAttribute(),
		})
	} else {
		g.Node = append(g.Node, onnx.Node("merge/probabilities/out", "Identity", []string{avg}, []string{pa.prob.GetName()}))
	}
	g.Node = append(g.Node, onnx.Node("merge/argmax", "ArgMax", []string{avg}, []string{idx},
		onnx.IntAttr("axis", 1), onnx.IntAttr("keepdims", 0)))
	labelType, _ := onnx.TensorElemType(pa.label)
	label := pa.label.GetName()
	switch {
	case !have && labelType == onnx.TensorProto_INT64:
		g.Node = append(g.Node, onnx.Node("merge/label", "Identity", []string{idx}, []string{label}))
	case have && ints != nil && labelType == onnx.TensorProto_INT64:
		g.Initializer = append(g.Initializer, onnx.Int64Tensor("merge/classes", []int64{int64(len(ints))}, ints))
		g.Node = append(g.Node, onnx.Node("merge/label", "Gather", []string{"merge/classes", idx}, []string{label}, onnx.IntAttr("axis", 0)))
	case have && strs != nil && labelType == onnx.TensorProto_STRING:
		g.Initializer = append(g.Initializer, onnx.StringTensor("merge/classes", []int64{int64(len(strs))}, strs))
		g.Node = append(g.Node, onnx.Node("merge/label", "Gather", []string{"merge/classes", idx}, []string{label}, onnx.IntAttr("axis", 0)))
	default:
		return fmt.Errorf("cannot tell the %s labels of output %s from the probabilities' columns", labelType, label)
	}
	return nil
}

// Merge makes a new version of model that is the weighted ensemble of
// versions v1 and v2 (MergeModels, weights w1 and w2), with parents
// [v1, v2] and source merge. Its other files (golden set, warm-up request)
// and what its drover.yaml says beyond lineage come from v1. Both
// model files are read into memory to build the graph.
func (r *Registry) Merge(ctx context.Context, model string, v1, v2 uint64, w1, w2 float32, meta Meta) (Version, bool, error) {
	c, err := r.PrepareMerge(ctx, model, v1, v2, w1, w2, meta)
	if err != nil {
		return Version{}, false, err
	}
	v, created, err := r.Commit(ctx, c)
	if err != nil {
		return Version{}, false, fmt.Errorf("merge %s v%d and v%d: %w", model, v1, v2, err)
	}
	return v, created, nil
}

// PrepareMerge does what Merge does up to the commit: it builds the merged
// model, stages it and returns the Commit (parents [v1, v2], source
// merge, v1's other files), for the caller to send to the model's ring
// owner (see CommitFunc). Merge is PrepareMerge then Commit.
func (r *Registry) PrepareMerge(ctx context.Context, model string, v1, v2 uint64, w1, w2 float32, meta Meta) (Commit, error) {
	fail := func(err error) (Commit, error) {
		return Commit{}, fmt.Errorf("merge %s v%d and v%d: %w", model, v1, v2, err)
	}
	var (
		onnxes [2][]byte
		first  Version
	)
	for i, n := range []uint64{v1, v2} {
		v, err := r.Version(ctx, model, n)
		if err != nil {
			return fail(err)
		}
		if v.State != StateActive {
			return fail(fmt.Errorf("v%d is deleted: %w", n, ErrNotFound))
		}
		f, ok := v.File(manifest.ModelFile)
		if !ok {
			return fail(fmt.Errorf("v%d has no %s: %w", n, manifest.ModelFile, ErrInvalid))
		}
		if onnxes[i], err = r.readBlob(ctx, f.SHA256, 4<<30); err != nil {
			return fail(err)
		}
		if i == 0 {
			first = v
		}
	}
	merged, err := MergeModels(onnxes[0], onnxes[1], w1, w2)
	if err != nil {
		return fail(err)
	}
	sum := sha256.Sum256(merged)
	mf, err := r.Stage(ctx, Upload{Path: manifest.ModelFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(merged)), Body: bytes.NewReader(merged)})
	if err != nil {
		return fail(err)
	}
	files := []FileInfo{mf}
	for _, f := range first.Files {
		if f.Path != manifest.ModelFile {
			files = append(files, f) // v1's drover.yaml is the "publisher's"
		}
	}
	meta.Source, meta.Parents = SourceMerge, []uint64{v1, v2}
	if meta.Message == "" {
		meta.Message = fmt.Sprintf("merge of v%d and v%d (weights %g, %g)", v1, v2, w1, w2)
	}
	return Commit{Model: model, Files: files, Meta: meta}, nil
}
