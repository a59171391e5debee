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
// decode them (agents' metrics straight into rows, protometrics.go; the
// rest with pdata, as pdata's own gRPC services do) and spool the same
// bytes. Registering pdata's services instead would decode the request
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

// exportHandler is the gRPC method handler of an OTLP Export method
// (fullMethod, "/service/Export"). It runs the server's interceptors
// (recovery, authentication) as generated handlers do.
func exportHandler(fullMethod string, export func(*Receiver, context.Context, *rawMessage) (*rawMessage, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(rawMessage)
		if err := dec(in); err != nil {
			return nil, err
		}
		r := srv.(*Receiver)
		if interceptor == nil {
			return export(r, ctx, in)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}
		return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
			return export(r, ctx, req.(*rawMessage))
		})
	}
}

func (r *Receiver) registerGRPC(s *grpc.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.metrics.v1.MetricsService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: exportHandler("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", (*Receiver).exportMetrics)}},
		Metadata:    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
	}, r)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.logs.v1.LogsService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: exportHandler("/opentelemetry.proto.collector.logs.v1.LogsService/Export", (*Receiver).exportLogs)}},
		Metadata:    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
	}, r)
}

// accepted is the empty Export*ServiceResponse: everything was accepted.
var accepted = &rawMessage{}

func (r *Receiver) exportMetrics(ctx context.Context, m *rawMessage) (*rawMessage, error) {
	if rows, points, ok := r.decodeMetrics(m.b); ok {
		return accepted, r.accept(ctx, KindMetrics, m.b, m.rec, points, rows, true)
	}
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(m.b); err != nil {
		return nil, status.Error(codes.InvalidArgument, "malformed OTLP metrics: "+err.Error())
	}
	points := req.Metrics().DataPointCount()
	rejected, msg := r.screen(KindMetrics, req.Metrics(), points)
	if rejected == 0 {
		return accepted, r.accept(ctx, KindMetrics, m.b, m.rec, points, req.Metrics(), true)
	}
	resp := pmetricotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedDataPoints(int64(rejected))
	resp.PartialSuccess().SetErrorMessage(msg)
	return r.acceptScreened(ctx, KindMetrics, req.MarshalProto, points-rejected, req.Metrics(), resp.MarshalProto)
}

func (r *Receiver) exportLogs(ctx context.Context, m *rawMessage) (*rawMessage, error) {
	req := plogotlp.NewExportRequest()
	if err := req.UnmarshalProto(m.b); err != nil {
		return nil, status.Error(codes.InvalidArgument, "malformed OTLP logs: "+err.Error())
	}
	records := req.Logs().LogRecordCount()
	rejected, msg := r.screen(KindLogs, req.Logs(), records)
	if rejected == 0 {
		return accepted, r.accept(ctx, KindLogs, m.b, m.rec, records, req.Logs(), true)
	}
	resp := plogotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedLogRecords(int64(rejected))
	resp.PartialSuccess().SetErrorMessage(msg)
	return r.acceptScreened(ctx, KindLogs, req.MarshalProto, records-rejected, req.Logs(), resp.MarshalProto)
}

// acceptScreened spools what is left of a request the limits took points
// out of (encoded again) and answers with the partial success.
func (r *Receiver) acceptScreened(ctx context.Context, kind Kind, encode func() ([]byte, error), left int, decoded any,
	response func() ([]byte, error)) (*rawMessage, error) {
	if left > 0 {
		payload, err := encode()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if err := r.accept(ctx, kind, payload, nil, left, decoded, true); err != nil {
			return nil, err
		}
	}
	b, err := response()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &rawMessage{b: b}, nil
}
