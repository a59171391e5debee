// Package onnx holds Go types for the ONNX model format (ModelProto,
// GraphProto, TensorProto, ...) and the few helpers Drover needs to read,
// build and write ONNX graphs: the registry's merge builds ensembles with
// them, the optimizer's export writes models with them, and package
// shared/testmodels builds its test models on top of them. Serving never uses
// this package: the agent reads models through ONNX Runtime.
//
// The types are generated from the public ONNX schema in onnx.proto3, which
// is onnx/onnx.proto from github.com/onnx/onnx at commit
// 64209faab4da3d679f2d46c7f725f6f2b779279b (IR version 10), converted to
// proto3 the way onnx/gen_proto.py produces upstream's own onnx.proto3 (the
// syntax line becomes "proto3" and leading "optional" keywords are dropped;
// the wire format is unchanged), with a go_package option added. The file is
// Apache-2.0 licensed by the ONNX Project Contributors.
//
// To regenerate onnx.proto3.pb.go, with protoc and protoc-gen-go v1.36.12 on
// PATH, run `go generate ./shared/onnx`.
//
// Every function here is safe for concurrent use; the messages it returns
// are owned by the caller.
package onnx

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative onnx.proto3
