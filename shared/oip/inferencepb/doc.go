// Package inferencepb holds the Go bindings of the Open Inference Protocol
// v2 gRPC API (proto package "inference", service GRPCInferenceService), the
// protocol KServe and Triton speak. The .proto is the public specification
// with only go_package added; see the header of grpc_predict_v2.proto for its
// source.
//
// The generated files are committed so that builds never need protoc. To
// regenerate them, install protoc (3.21.12 was used), protoc-gen-go v1.36.12
// and protoc-gen-go-grpc v1.6.2, then run go generate in this directory.
// Conversion to and from the agent's own types lives in package oip.
package inferencepb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative grpc_predict_v2.proto
