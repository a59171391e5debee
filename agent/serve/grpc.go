package serve

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/drover-ml/drover/shared/oip"
	pb "github.com/drover-ml/drover/shared/oip/inferencepb"
)

// grpcService implements inference.GRPCInferenceService.
type grpcService struct {
	pb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// NewGRPCServer returns a gRPC server with the inference service
// registered, its message size bounded by MaxRequestBytes, each method
// behind the check its GRPCMethods entry names (ModelInfer follows
// serving.auth), idle connections closed after IdleTimeout and clients
// that ping too often refused. A panic in a handler is answered Internal,
// logged and counted (drover.agent.panics); the recovery is the outermost
// interceptor, so it also covers the access check and those in opts.
func (s *Server) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(s.cfg.MaxRequestBytes)),
		grpc.MaxSendMsgSize(int(s.cfg.MaxRequestBytes)),
		grpc.MaxConcurrentStreams(uint32(min(s.cfg.MaxInFlight, 1<<20))),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: s.cfg.IdleTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	base = append(base, s.recoverGRPC()...)
	base = append(base, s.grpcAuth()...)
	opts = append(base, opts...)
	g := grpc.NewServer(opts...)
	pb.RegisterGRPCInferenceServiceServer(g, &grpcService{s: s})
	var methods []string
	for name, info := range g.GetServiceInfo() {
		for _, m := range info.Methods {
			methods = append(methods, "/"+name+"/"+m.Name)
		}
	}
	s.patternsMu.Lock()
	s.grpcMethods = methods
	s.patternsMu.Unlock()
	return g
}

func grpcError(err error) error {
	e := classify(err)
	return status.Error(e.Code, e.Msg)
}

func (g *grpcService) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: g.s.Live()}, nil
}

func (g *grpcService) ServerReady(context.Context, *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, r *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	version, err := parseVersion(r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	ok, err := g.s.ModelReady(r.GetName(), version)
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.ModelReadyResponse{Ready: ok}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	md := g.s.Metadata()
	return &pb.ServerMetadataResponse{Name: md.Name, Version: md.Version, Extensions: md.Extensions}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, r *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	version, err := parseVersion(r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	md, err := g.s.ModelMetadata(r.GetName(), version)
	if err != nil {
		return nil, grpcError(err)
	}
	return oip.ModelMetadataToProto(md), nil
}

func (g *grpcService) ModelInfer(ctx context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	version, err := parseVersion(r.GetModelVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	req, err := oip.RequestFromProto(r)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, err := g.s.Infer(ctx, "grpc", r.GetModelName(), version, req)
	if err != nil {
		return nil, grpcError(err)
	}
	// Answer in the form the client used: raw contents for raw requests.
	out, err := oip.ResponseToProto(resp, len(r.GetRawInputContents()) > 0)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return out, nil
}
