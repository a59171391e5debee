package onnx_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/drover-ml/drover/shared/onnx"
)

func testModel() *onnx.ModelProto {
	g := &onnx.GraphProto{
		Name:        "g",
		Node:        []*onnx.NodeProto{onnx.Node("add", "Add", []string{"X", "B"}, []string{"Y"})},
		Initializer: []*onnx.TensorProto{onnx.FloatTensor("B", []int64{2}, []float32{1, 2})},
		Input:       []*onnx.ValueInfoProto{onnx.TensorValueInfo("X", onnx.TensorProto_FLOAT, []int64{-1, 2})},
		Output:      []*onnx.ValueInfoProto{onnx.TensorValueInfo("Y", onnx.TensorProto_FLOAT, []int64{-1, -1})},
	}
	return onnx.NewModel(g, 8, "test", onnx.Opset("", 13), onnx.Opset("ai.onnx.ml", 3))
}

func TestMarshalRoundTripIsDeterministic(t *testing.T) {
	a, err := onnx.Marshal(testModel())
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnx.Marshal(testModel())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two marshals of the same model differ")
	}
	m, err := onnx.Unmarshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetGraph().GetInitializer()[0].GetRawData(); !bytes.Equal(got, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}) {
		t.Errorf("raw data of [1 2] = %x, want little-endian IEEE 754", got)
	}
	dims := m.GetGraph().GetOutput()[0].GetType().GetTensorType().GetShape().GetDim()
	if dims[0].GetDimParam() != onnx.BatchDim || dims[1].GetDimParam() != "dim1" {
		t.Errorf("dynamic dims = %q, %q, want batch, dim1", dims[0].GetDimParam(), dims[1].GetDimParam())
	}
	if v, ok := onnx.OpsetVersion(m, "ai.onnx"); !ok || v != 13 {
		t.Errorf("OpsetVersion(ai.onnx) = %d, %v, want 13", v, ok)
	}
	if v, ok := onnx.OpsetVersion(m, "ai.onnx.ml"); !ok || v != 3 {
		t.Errorf("OpsetVersion(ai.onnx.ml) = %d, %v, want 3", v, ok)
	}
	if _, ok := onnx.OpsetVersion(m, "com.microsoft"); ok {
		t.Error("OpsetVersion(com.microsoft) found an import the model does not have")
	}
}

func TestUnmarshalRejectsWhatIsNotAModel(t *testing.T) {
	noOutputs := testModel()
	noOutputs.Graph.Output = nil
	noOutputsBytes, _ := onnx.Marshal(noOutputs)
	for name, data := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("name: iris\nversion: 3\n"),
		"garbage":    {0xff, 0xff, 0xff, 0xff},
		"no outputs": noOutputsBytes,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := onnx.Unmarshal(data); !errors.Is(err, onnx.ErrNotModel) {
				t.Fatalf("Unmarshal = %v, want ErrNotModel", err)
			}
		})
	}
}
