// Package onnxpb holds Go types for the ONNX model format (ModelProto,
// GraphProto, TensorProto, ...), generated from the public ONNX schema in
// onnx.proto3.
//
// onnx.proto3 is onnx/onnx.proto from github.com/onnx/onnx at commit
// 64209faab4da3d679f2d46c7f725f6f2b779279b (IR version 10), converted to
// proto3 the way onnx/gen_proto.py produces upstream's own onnx.proto3 (the
// syntax line becomes "proto3" and leading "optional" keywords are dropped;
// the wire format is unchanged), with a go_package option added. The file is
// Apache-2.0 licensed by the ONNX Project Contributors.
//
// Drover uses these types only to build small models for tests and
// benchmarks (package testmodels); serving reads models through ONNX Runtime.
//
// To regenerate onnx.proto3.pb.go, with protoc and protoc-gen-go v1.36.12 on
// PATH, run `go generate ./shared/testmodels/onnxpb`.
package onnxpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative onnx.proto3
