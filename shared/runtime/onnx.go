package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/drover-ml/drover/shared/oip"
)

// ONNX is the ONNX Runtime backend. Init must have succeeded before Load.
type ONNX struct {
	Options Options
	// Log receives ONNX Runtime's own log lines for the sessions it
	// creates (see ortlog.go); nil means slog.Default(). Its level decides
	// the sessions' ORT severity.
	Log *slog.Logger

	routeFailed sync.Once
	// watch stops the runs of every model the backend loaded at their
	// deadline or their context's end: one timer for all of them. It is
	// made at the first Load.
	watchOnce sync.Once
	watch     *watchdog
}

func (b *ONNX) watchdog() *watchdog {
	b.watchOnce.Do(func() { b.watch = newWatchdog() })
	return b.watch
}

func (b *ONNX) logger() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

var ortToOIP = map[ort.TensorElementDataType]oip.Datatype{
	ort.TensorElementDataTypeBool:    oip.BOOL,
	ort.TensorElementDataTypeUint8:   oip.UINT8,
	ort.TensorElementDataTypeUint16:  oip.UINT16,
	ort.TensorElementDataTypeUint32:  oip.UINT32,
	ort.TensorElementDataTypeUint64:  oip.UINT64,
	ort.TensorElementDataTypeInt8:    oip.INT8,
	ort.TensorElementDataTypeInt16:   oip.INT16,
	ort.TensorElementDataTypeInt32:   oip.INT32,
	ort.TensorElementDataTypeInt64:   oip.INT64,
	ort.TensorElementDataTypeFloat16: oip.FP16,
	ort.TensorElementDataTypeFloat:   oip.FP32,
	ort.TensorElementDataTypeDouble:  oip.FP64,
	ort.TensorElementDataTypeString:  oip.BYTES,
}

// onnxModel is a loaded ONNX Runtime session.
type onnxModel struct {
	session *ort.DynamicAdvancedSession
	sig     Signature
	info    map[string]string
	// outKinds[i] says how output i of the session is converted.
	outKinds []outKind
	// outIndex maps an output name to its index in sig.Outputs.
	outIndex map[string]int
	// stopLog ends the routing of the session's ORT log (nil: none).
	stopLog func()
	// noPrealloc is set once a run with Go-allocated outputs failed and the
	// same run with outputs that ONNX Runtime allocates succeeded: the
	// declared output shapes are not the real ones, so outputs are no
	// longer allocated ahead (FP16 outputs always are).
	noPrealloc atomic.Bool
	// watch terminates runs past their deadline or whose context ended
	// (the backend's).
	watch *watchdog
}

type outKind int

const (
	outTensor outKind = iota
	outZipMap         // sequence<map<K, float>> -> FP32 [N, classes]
)

// Load creates a session for the model file at path, reads its signature
// and metadata, and, for classifiers whose probabilities come as a sequence
// of maps, runs it once to learn the class labels.
func (b *ONNX) Load(ctx context.Context, path string) (_ Model, err error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	// ORT's log for this session goes to the logger; if the library cannot
	// route it, it stays on stderr (said once) and the model still loads.
	stopLog, lerr := routeSessionLog(opts, b.logger(), path)
	if lerr != nil {
		b.routeFailed.Do(func() {
			b.logger().Warn("ONNX Runtime's log cannot be routed to this logger; it stays on stderr", "err", lerr)
		})
		stopLog = func() {}
	}
	defer func() {
		if err != nil {
			stopLog()
		}
	}()
	if n := b.Options.IntraOpThreads; n > 0 {
		if err := opts.SetIntraOpNumThreads(n); err != nil {
			return nil, fmt.Errorf("intra_op_threads %d: %w", n, err)
		}
	}
	if n := b.Options.InterOpThreads; n > 0 {
		if err := opts.SetInterOpNumThreads(n); err != nil {
			return nil, fmt.Errorf("inter_op_threads %d: %w", n, err)
		}
	}

	ins, outs, err := ort.GetInputOutputInfoWithOptions(path, opts)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	m := &onnxModel{info: map[string]string{}, outIndex: map[string]int{}, stopLog: stopLog, watch: b.watchdog()}
	inNames := make([]string, len(ins))
	for i, in := range ins {
		if in.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("input %q is a %s; only tensor inputs can be served", in.Name, in.OrtValueType)
		}
		dt, ok := ortToOIP[in.DataType]
		if !ok {
			return nil, fmt.Errorf("input %q has element type %s, which the Open Inference Protocol cannot carry", in.Name, in.DataType)
		}
		inNames[i] = in.Name
		m.sig.Inputs = append(m.sig.Inputs, TensorSpec{Name: in.Name, Datatype: dt, Shape: dims(in.Dimensions)})
	}
	outNames := make([]string, len(outs))
	for i, out := range outs {
		outNames[i] = out.Name
		m.outIndex[out.Name] = i
		switch out.OrtValueType {
		case ort.ONNXTypeTensor:
			dt, ok := ortToOIP[out.DataType]
			if !ok {
				return nil, fmt.Errorf("output %q has element type %s, which the Open Inference Protocol cannot carry", out.Name, out.DataType)
			}
			m.sig.Outputs = append(m.sig.Outputs, TensorSpec{Name: out.Name, Datatype: dt, Shape: dims(out.Dimensions)})
			m.outKinds = append(m.outKinds, outTensor)
		case ort.ONNXTypeSequence:
			// skl2onnx's ZipMap: a sequence of maps from class label to
			// probability. Served as FP32 [N, classes]; classes are learned
			// from a probe run below.
			m.sig.Outputs = append(m.sig.Outputs, TensorSpec{Name: out.Name, Datatype: oip.FP32, Shape: []int64{-1, -1}})
			m.outKinds = append(m.outKinds, outZipMap)
		default:
			return nil, fmt.Errorf("output %q is a %s, which the Open Inference Protocol cannot carry", out.Name, out.OrtValueType)
		}
	}

	m.session, err = ort.NewDynamicAdvancedSession(path, inNames, outNames, opts)
	if err != nil {
		return nil, fmt.Errorf("create session for %s: %w", path, err)
	}
	m.readInfo()
	for i, k := range m.outKinds {
		if k != outZipMap {
			continue
		}
		classes, err := m.probeClasses(ctx, i)
		if err != nil {
			m.session.Destroy()
			return nil, fmt.Errorf("learn the class labels of output %q: %w", outNames[i], err)
		}
		m.sig.Outputs[i].Classes = classes
		m.sig.Outputs[i].Shape = []int64{-1, int64(len(classes))}
	}
	return m, nil
}

func dims(s ort.Shape) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		if d < 0 {
			d = -1
		}
		out[i] = d
	}
	return out
}

func (m *onnxModel) readInfo() {
	md, err := m.session.GetModelMetadata()
	if err != nil {
		return
	}
	defer md.Destroy()
	if v, err := md.GetProducerName(); err == nil && v != "" {
		m.info["producer"] = v
	}
	if v, err := md.GetGraphName(); err == nil && v != "" {
		m.info["graph"] = v
	}
	if v, err := md.GetDescription(); err == nil && v != "" {
		m.info["description"] = v
	}
	if v, err := md.GetDomain(); err == nil && v != "" {
		m.info["domain"] = v
	}
	if keys, err := md.GetCustomMetadataMapKeys(); err == nil {
		for _, k := range keys {
			if v, ok, err := md.LookupCustomMetadataMap(k); err == nil && ok {
				m.info[k] = v
			}
		}
	}
}

// probeClasses runs the model on one all-zero example and returns the keys
// of the first map of output i, sorted (numerically when they are ints).
func (m *onnxModel) probeClasses(ctx context.Context, i int) ([]string, error) {
	inputs := make([]oip.Tensor, len(m.sig.Inputs))
	for j, spec := range m.sig.Inputs {
		t, err := ZeroTensor(spec, 1)
		if err != nil {
			return nil, err
		}
		inputs[j] = t
	}
	values, err := m.runRaw(ctx, time.Time{}, inputs)
	if err != nil {
		return nil, err
	}
	defer destroyAll(values)
	seq, ok := values[i].(*ort.Sequence)
	if !ok {
		return nil, fmt.Errorf("output is %T, want a sequence", values[i])
	}
	maps, err := seq.GetValues()
	if err != nil || len(maps) == 0 {
		return nil, fmt.Errorf("empty sequence (%v)", err)
	}
	mp, ok := maps[0].(*ort.Map)
	if !ok {
		return nil, fmt.Errorf("sequence holds %T, want maps", maps[0])
	}
	keys, _, err := mp.GetKeysAndValues()
	if err != nil {
		return nil, err
	}
	switch k := keys.(type) {
	case *ort.Tensor[int64]:
		ks := append([]int64(nil), k.GetData()...)
		sort.Slice(ks, func(a, b int) bool { return ks[a] < ks[b] })
		out := make([]string, len(ks))
		for j, v := range ks {
			out[j] = strconv.FormatInt(v, 10)
		}
		return out, nil
	case *ort.StringTensor:
		ks, err := k.GetContents()
		if err != nil {
			return nil, err
		}
		sort.Strings(ks)
		return ks, nil
	}
	return nil, fmt.Errorf("map keys are %T, want int64 or string", keys)
}

// ZeroTensor returns an all-zero tensor for spec with dynamic dimensions set
// to batch (the first) or 1 (the others).
func ZeroTensor(spec TensorSpec, batch int64) (oip.Tensor, error) {
	shape := make([]int64, len(spec.Shape))
	for d, v := range spec.Shape {
		switch {
		case v >= 0:
			shape[d] = v
		case d == 0:
			shape[d] = batch
		default:
			shape[d] = 1
		}
	}
	n, err := oip.NumElements(shape)
	if err != nil {
		return oip.Tensor{}, err
	}
	data, err := oip.MakeData(spec.Datatype, n)
	if err != nil {
		return oip.Tensor{}, err
	}
	if b, ok := data.([][]byte); ok {
		for i := range b {
			b[i] = []byte{}
		}
	}
	return oip.Tensor{Name: spec.Name, Datatype: spec.Datatype, Shape: shape, Data: data}, nil
}

func (m *onnxModel) Signature() Signature    { return m.sig }
func (m *onnxModel) Info() map[string]string { return m.info }

func (m *onnxModel) Close() error {
	err := m.session.Destroy()
	if m.stopLog != nil {
		m.stopLog()
	}
	if err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	return nil
}

// Run checks the inputs, runs the session and converts the requested
// outputs. Output data is Go memory owned by the caller.
func (m *onnxModel) Run(ctx context.Context, inputs []oip.Tensor, outputs []string) ([]oip.Tensor, error) {
	return m.RunBefore(ctx, time.Time{}, inputs, outputs)
}

// RunBefore is Run with a deadline besides ctx's.
func (m *onnxModel) RunBefore(ctx context.Context, deadline time.Time, inputs []oip.Tensor, outputs []string) ([]oip.Tensor, error) {
	ordered, err := CheckInputs(m.sig, inputs)
	if err != nil {
		return nil, err
	}
	for _, name := range outputs {
		if _, ok := m.outIndex[name]; !ok {
			return nil, inputErrorf("unknown output %q; the model's outputs are %s", name, names(m.sig.Outputs))
		}
	}
	// Inputs given in the signature's order (the usual case) are run as
	// they are; others are put in order.
	in := inputs
	for i, t := range ordered {
		if t != &inputs[i] {
			in = make([]oip.Tensor, len(ordered))
			for j, t := range ordered {
				in[j] = *t
			}
			break
		}
	}
	values, err := m.runRaw(ctx, deadline, in)
	if err != nil {
		return nil, err
	}
	defer destroyAll(values)
	n := len(outputs)
	if n == 0 {
		n = len(m.sig.Outputs)
	}
	res := make([]oip.Tensor, n)
	for k := range res {
		i := k
		if len(outputs) > 0 {
			i = m.outIndex[outputs[k]]
		}
		if res[k], err = m.convertOutput(i, values[i]); err != nil {
			return nil, fmt.Errorf("output %q: %w", m.sig.Outputs[i].Name, err)
		}
	}
	return res, nil
}

// runRaw runs the session on inputs (in signature order) and returns the
// ONNX Runtime output values, which the caller must destroy. The run stops
// when ctx ends or at deadline (zero: none); a run whose ctx has ended or
// whose deadline has passed does not start (watchdog.start).
func (m *onnxModel) runRaw(ctx context.Context, deadline time.Time, inputs []oip.Tensor) ([]ort.Value, error) {
	vals := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i := range inputs {
		v, err := toOrtValue(&inputs[i])
		if err != nil {
			return nil, &InputError{Msg: fmt.Sprintf("input %q: %v", inputs[i].Name, err)}
		}
		vals[i] = v
	}
	prealloc := !m.noPrealloc.Load()
	outs, stopped, err := m.run(ctx, deadline, vals, inputs, prealloc)
	if err != nil && prealloc && !stopped {
		// Outputs allocated ahead from the declared shapes may not match
		// what the model really produces: run again with outputs ONNX
		// Runtime allocates, and keep to that if it works.
		if outs2, _, err2 := m.run(ctx, deadline, vals, inputs, false); err2 == nil {
			m.noPrealloc.Store(true)
			return outs2, nil
		}
	}
	return outs, err
}

// run runs the session once on the input values; prealloc allocates the
// outputs whose shape is known ahead in Go memory (else ONNX Runtime
// allocates them and onnxruntime_go copies them out). stopped says that
// the run failed because ctx ended or the deadline passed.
func (m *onnxModel) run(ctx context.Context, deadline time.Time, vals []ort.Value, inputs []oip.Tensor, prealloc bool) (outs []ort.Value, stopped bool, err error) {
	outs = make([]ort.Value, len(m.outKinds))
	if err := m.preallocate(outs, inputs, prealloc); err != nil {
		return nil, false, err
	}
	if deadline.IsZero() && ctx == context.Background() {
		err = m.session.Run(vals, outs)
	} else {
		// Cancellation and the deadline reach ONNX Runtime through a
		// terminate flag on pooled run options, which the backend's watchdog
		// sets.
		ro, rerr := getRunOptions()
		if rerr != nil {
			destroyAll(outs)
			return nil, false, fmt.Errorf("run options: %w", rerr)
		}
		r, werr := m.watch.start(ctx, deadline, ro)
		if werr != nil {
			putRunOptions(ro)
			destroyAll(outs)
			return nil, true, werr
		}
		err = m.session.RunWithOptions(vals, outs, ro)
		ended := m.watch.finish(r)
		if ended != nil {
			// Terminated, whether or not the run noticed: the options are
			// reused once their flag is cleared.
			if ro.UnsetTerminate() != nil {
				ro.Destroy()
				ro = nil
			}
			if err != nil {
				err = fmt.Errorf("%w (%v)", ended, err)
				stopped = true
			}
		}
		if ro != nil {
			putRunOptions(ro)
		}
	}
	goruntime.KeepAlive(inputs)
	if err != nil {
		destroyAll(outs)
		if stopped {
			return nil, true, err
		}
		return nil, false, fmt.Errorf("run: %w", err)
	}
	return outs, false, nil
}

// preallocate creates the output buffers that onnxruntime_go cannot
// allocate itself: FP16 outputs (it would copy one byte per element). Their
// shape must be static except for a leading batch dimension, which is taken
// from the first input's. With all, it also allocates every other numeric
// output whose shape is known that way, in Go memory that ONNX Runtime
// writes into: one call into the library per output instead of the five or
// six it takes to describe, allocate and copy out an output it allocated.
func (m *onnxModel) preallocate(outs []ort.Value, inputs []oip.Tensor, all bool) error {
	for i, spec := range m.sig.Outputs {
		if m.outKinds[i] != outTensor || spec.Datatype == oip.BYTES {
			continue
		}
		if spec.Datatype != oip.FP16 {
			if all {
				if err := m.preallocateOutput(outs, i, inputs); err != nil {
					destroyAll(outs)
					return fmt.Errorf("output %q: %w", spec.Name, err)
				}
			}
			continue
		}
		shape := make(ort.Shape, len(spec.Shape))
		for d, v := range spec.Shape {
			switch {
			case v >= 0:
				shape[d] = v
			case d == 0 && len(inputs) > 0 && len(inputs[0].Shape) > 0:
				shape[d] = inputs[0].Shape[0]
			default:
				destroyAll(outs)
				return fmt.Errorf("output %q: FP16 outputs need a static shape apart from the batch dimension, the model declares %v", spec.Name, spec.Shape)
			}
		}
		n, err := oip.NumElements(shape)
		if err != nil {
			destroyAll(outs)
			return err
		}
		t, err := ort.NewCustomDataTensor(shape, make([]byte, 2*n+1)[:2*n], ort.TensorElementDataTypeFloat16)
		if err != nil {
			destroyAll(outs)
			return fmt.Errorf("output %q: %w", spec.Name, err)
		}
		outs[i] = t
	}
	return nil
}

// freeRunOptions keeps run options whose terminate flag is clear, for reuse
// (a bounded free list rather than a sync.Pool, whose drops at GC would leak
// the C objects).
var freeRunOptions = make(chan *ort.RunOptions, 256)

func getRunOptions() (*ort.RunOptions, error) {
	select {
	case ro := <-freeRunOptions:
		return ro, nil
	default:
		return ort.NewRunOptions()
	}
}

func putRunOptions(ro *ort.RunOptions) {
	select {
	case freeRunOptions <- ro:
	default:
		ro.Destroy()
	}
}

// preallocateOutput allocates output i in Go memory when its shape is
// static apart from a leading batch dimension (taken from the first
// input's) and it has elements; otherwise it leaves outs[i] nil.
func (m *onnxModel) preallocateOutput(outs []ort.Value, i int, inputs []oip.Tensor) error {
	spec := m.sig.Outputs[i]
	shape := make(ort.Shape, len(spec.Shape))
	for d, v := range spec.Shape {
		switch {
		case v >= 0:
			shape[d] = v
		case d == 0 && len(inputs) > 0 && len(inputs[0].Shape) > 0:
			shape[d] = inputs[0].Shape[0]
		default:
			return nil
		}
	}
	n, err := oip.NumElements(shape)
	if err != nil || n == 0 {
		return nil
	}
	var v ort.Value
	switch spec.Datatype {
	case oip.FP32:
		v, err = ort.NewTensor(shape, make([]float32, n))
	case oip.FP64:
		v, err = ort.NewTensor(shape, make([]float64, n))
	case oip.INT64:
		v, err = ort.NewTensor(shape, make([]int64, n))
	case oip.INT32:
		v, err = ort.NewTensor(shape, make([]int32, n))
	case oip.INT16:
		v, err = ort.NewTensor(shape, make([]int16, n))
	case oip.INT8:
		v, err = ort.NewTensor(shape, make([]int8, n))
	case oip.UINT8:
		v, err = ort.NewTensor(shape, make([]uint8, n))
	case oip.UINT16:
		v, err = ort.NewTensor(shape, make([]uint16, n))
	case oip.UINT32:
		v, err = ort.NewTensor(shape, make([]uint32, n))
	case oip.UINT64:
		v, err = ort.NewTensor(shape, make([]uint64, n))
	case oip.BOOL:
		v, err = ort.NewTensor(shape, make([]bool, n))
	default:
		return nil
	}
	if err != nil {
		return err
	}
	outs[i] = v
	return nil
}

func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			v.Destroy()
		}
	}
}

// toOrtValue wraps the tensor's data for ONNX Runtime. Numeric data is
// shared, not copied: the tensor must stay alive until the run ends.
func toOrtValue(t *oip.Tensor) (ort.Value, error) {
	s := ort.Shape(t.Shape)
	switch d := t.Data.(type) {
	case []float32:
		return newTensor(s, d)
	case []float64:
		return newTensor(s, d)
	case []int64:
		return newTensor(s, d)
	case []int32:
		return newTensor(s, d)
	case []int16:
		return newTensor(s, d)
	case []int8:
		return newTensor(s, d)
	case []uint8:
		return newTensor(s, d)
	case []uint32:
		return newTensor(s, d)
	case []uint64:
		return newTensor(s, d)
	case []bool:
		return newTensor(s, d)
	case []uint16:
		if t.Datatype == oip.FP16 {
			if len(d) == 0 {
				return ort.NewCustomDataTensor(s, []byte{}, ort.TensorElementDataTypeFloat16)
			}
			b := unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), 2*len(d))
			return ort.NewCustomDataTensor(s, b, ort.TensorElementDataTypeFloat16)
		}
		return newTensor(s, d)
	case [][]byte:
		st, err := ort.NewStringTensor(s)
		if err != nil {
			return nil, err
		}
		strs := make([]string, len(d))
		for i, b := range d {
			strs[i] = string(b)
		}
		if err := st.SetContents(strs); err != nil {
			st.Destroy()
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("unsupported data %T", t.Data)
}

func newTensor[T ort.TensorData](s ort.Shape, d []T) (ort.Value, error) {
	if len(d) == 0 {
		// ONNX Runtime still needs a non-nil buffer for empty tensors.
		d = make([]T, 0, 1)
	}
	return ort.NewTensor(s, d)
}

func (m *onnxModel) convertOutput(i int, v ort.Value) (oip.Tensor, error) {
	spec := m.sig.Outputs[i]
	if m.outKinds[i] == outZipMap {
		return zipMapToTensor(spec, v)
	}
	t := oip.Tensor{Name: spec.Name, Datatype: spec.Datatype, Shape: []int64(v.GetShape())}
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		t.Data = x.GetData()
	case *ort.Tensor[float64]:
		t.Data = x.GetData()
	case *ort.Tensor[int64]:
		t.Data = x.GetData()
	case *ort.Tensor[int32]:
		t.Data = x.GetData()
	case *ort.Tensor[int16]:
		t.Data = x.GetData()
	case *ort.Tensor[int8]:
		t.Data = x.GetData()
	case *ort.Tensor[uint8]:
		t.Data = x.GetData()
	case *ort.Tensor[uint16]:
		t.Data = x.GetData()
	case *ort.Tensor[uint32]:
		t.Data = x.GetData()
	case *ort.Tensor[uint64]:
		t.Data = x.GetData()
	case *ort.Tensor[bool]:
		t.Data = x.GetData()
	case *ort.CustomDataTensor:
		b := x.GetData()
		if spec.Datatype != oip.FP16 || len(b)%2 != 0 {
			return t, fmt.Errorf("unexpected %s data of %d bytes", spec.Datatype, len(b))
		}
		h := make([]uint16, len(b)/2)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(h))), len(b)), b)
		t.Data = h
	case *ort.StringTensor:
		strs, err := x.GetContents()
		if err != nil {
			return t, err
		}
		bs := make([][]byte, len(strs))
		for j, s := range strs {
			bs[j] = []byte(s)
		}
		t.Data = bs
	default:
		return t, fmt.Errorf("unexpected value %T", v)
	}
	// Tensors that onnxruntime_go allocated for outputs hold Go memory, so
	// the data stays valid after the value is destroyed.
	return t, nil
}

// zipMapToTensor converts a sequence of maps (class -> probability) to an
// FP32 [N, classes] tensor in the order of spec.Classes.
func zipMapToTensor(spec TensorSpec, v ort.Value) (oip.Tensor, error) {
	seq, ok := v.(*ort.Sequence)
	if !ok {
		return oip.Tensor{}, fmt.Errorf("want a sequence of maps, got %T", v)
	}
	maps, err := seq.GetValues()
	if err != nil {
		return oip.Tensor{}, err
	}
	nc := len(spec.Classes)
	out := make([]float32, len(maps)*nc)
	col := make(map[string]int, nc)
	for j, c := range spec.Classes {
		col[c] = j
	}
	for r, mv := range maps {
		mp, ok := mv.(*ort.Map)
		if !ok {
			return oip.Tensor{}, fmt.Errorf("row %d: want a map, got %T", r, mv)
		}
		keys, vals, err := mp.GetKeysAndValues()
		if err != nil {
			return oip.Tensor{}, err
		}
		probs, err := floatData(vals)
		if err != nil {
			return oip.Tensor{}, fmt.Errorf("row %d: %w", r, err)
		}
		switch k := keys.(type) {
		case *ort.Tensor[int64]:
			for j, key := range k.GetData() {
				c, ok := col[strconv.FormatInt(key, 10)]
				if !ok {
					return oip.Tensor{}, fmt.Errorf("row %d: class %d was not seen when the model loaded", r, key)
				}
				out[r*nc+c] = probs[j]
			}
		case *ort.StringTensor:
			ks, err := k.GetContents()
			if err != nil {
				return oip.Tensor{}, err
			}
			for j, key := range ks {
				c, ok := col[key]
				if !ok {
					return oip.Tensor{}, fmt.Errorf("row %d: class %q was not seen when the model loaded", r, key)
				}
				out[r*nc+c] = probs[j]
			}
		default:
			return oip.Tensor{}, fmt.Errorf("row %d: map keys are %T", r, keys)
		}
	}
	return oip.Tensor{Name: spec.Name, Datatype: oip.FP32, Shape: []int64{int64(len(maps)), int64(nc)}, Data: out}, nil
}

func floatData(v ort.Value) ([]float32, error) {
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return x.GetData(), nil
	case *ort.Tensor[float64]:
		d := x.GetData()
		out := make([]float32, len(d))
		for i, f := range d {
			out[i] = float32(f)
		}
		return out, nil
	}
	return nil, errors.New("map values are not floats")
}
