package serve

import (
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/drover-ml/drover/shared/recovery"
)

// A panic in a request handler is a bug, not a reason to stop serving
// every other request: shared/recovery answers it with 500 / Internal,
// and onPanic logs it with its stack and counts it (drover.agent.panics).
// The request's own deferred clean-up (its in-flight slot, its version
// reference) runs as the panic unwinds.

// onPanic reports a recovered panic. The protocol label of
// drover.agent.panics is "rest" or "grpc".
func (s *Server) onPanic() recovery.OnPanic {
	return recovery.Logged(s.log, func(protocol string) {
		if protocol == recovery.ProtocolHTTP {
			protocol = "rest"
		}
		s.tel.RecordPanic(protocol)
	})
}

// recoverHTTP answers a panic in h with the protocol's 500 error body.
func (s *Server) recoverHTTP(h http.Handler) http.Handler {
	return recovery.HTTP(h, s.onPanic(), func(w http.ResponseWriter) {
		writeError(w, errorf(http.StatusInternalServerError, codes.Internal, "internal error"))
	})
}

// recoverGRPC are the server options that answer a panic with Internal.
func (s *Server) recoverGRPC() []grpc.ServerOption { return recovery.GRPC(s.onPanic()) }
