package ingest

import (
	"context"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// The OTLP gRPC services are registered with a codec that hands their
// handlers the request's bytes as they came off the wire; the handlers
// decode them with pdata, as pdata's own gRPC services do, and spool the
// same bytes. Registering pdata's services instead would decode the request
// and then encode it again for the spool (about 5% of the collector's CPU
// at full load).

// rawMessage is a request or response in protobuf wire format. A request
// is read into rec[recordHeader:], leaving room for the spool record
// header (see recordSink); b is the message.
type rawMessage struct{ b, rec []byte }

// rawCodec passes rawMessage through and leaves every other type to the
// proto codec.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		m.rec = make([]byte, recordHeader+data.Len())
		data.CopyTo(m.rec[recordHeader:])
		m.b = m.rec[recordHeader:]
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2("proto")} }

// exportHandler is the gRPC method handler of an OTLP Export method.
func exportHandler(export func(*Receiver, context.Context, *rawMessage) error) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(rawMessage)
		if err := dec(in); err != nil {
			return nil, err
		}
		r := srv.(*Receiver)
		if err := export(r, ctx, in); err != nil {
			return nil, err
		}
		// An empty Export*ServiceResponse: everything was accepted.
		return &rawMessage{}, nil
	}
}

func (r *Receiver) registerGRPC(s *grpc.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.metrics.v1.MetricsService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: exportHandler((*Receiver).exportMetrics)}},
		Metadata:    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
	}, r)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.logs.v1.LogsService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: exportHandler((*Receiver).exportLogs)}},
		Metadata:    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
	}, r)
}

func (r *Receiver) exportMetrics(ctx context.Context, m *rawMessage) error {
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(m.b); err != nil {
		return status.Error(codes.InvalidArgument, "malformed OTLP metrics: "+err.Error())
	}
	return r.accept(ctx, KindMetrics, m.b, m.rec, req.Metrics().DataPointCount(), req.Metrics(), true)
}

func (r *Receiver) exportLogs(ctx context.Context, m *rawMessage) error {
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalProto(m.b); err != nil {
		return status.Error(codes.InvalidArgument, "malformed OTLP logs: "+err.Error())
	}
	return r.accept(ctx, KindLogs, m.b, m.rec, req.Logs().LogRecordCount(), req.Logs(), true)
}
