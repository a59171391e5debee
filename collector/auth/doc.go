// Package auth is Drover's token model: who may call what on every listener
// of the collector (and, later, of the agent).
//
// # Roles
//
// A token has one Role: Admin (everything), Reader (every read of the admin
// API, /metrics), Publisher (publish, optimize by hand), Agent (control
// channel, blob reads, OTLP) or Client (feedback, and inference where an
// operator turns auth on). Admin satisfies every requirement; no other role
// implies another (least privilege: an agent token stolen from a serving
// host reads no fleet data, a publisher cannot read unless it also holds a
// reader token). A route says who may call it with an Access: Allow(roles...)
// (Admin always included), or Public for /healthz, /readyz and routes that
// authenticate otherwise (the signed webhook callback). The zero Access is
// admin only, so a route left out of the table fails closed.
//
// # Tokens
//
// Tokens are "drover_" + 32 random bytes (base64url); only their sha256 is
// ever stored: in ClickHouse (table tokens, migration 0008_auth), so every
// collector of a cluster accepts the same tokens; in memory (requests never
// wait for ClickHouse; re-read every auth.refresh_interval and at once after
// a local change); and in the data dir (CacheFile, 0600), so authentication,
// and with it OTLP ingest into the spool, keeps working while ClickHouse is
// down and across a restart. auth.tokens_file adds tokens an operator
// manages (a YAML list of {name, role, sha256}; re-read when it changes).
// A revoke always wins over the create of its name, and names are not
// reused. auth.disabled: true is the only way to run without tokens and is
// logged as a warning at start.
//
// On a first start, when neither ClickHouse nor the cache nor the
// tokens_file holds a token, New creates an admin and an agent token named
// admin-XXXXXX and agent-XXXXXX (a random suffix) and writes them to
// AdminTokenFile and AgentTokenFile in the data dir (0600, token and a
// newline), logging where. Two collectors that bootstrap one empty database
// at the same moment each create their own pair; all four tokens are valid
// on both collectors and neither's files are broken (the extra pair can be
// revoked).
//
// # Wiring (for the collector's server)
//
//	a, err := auth.New(ctx, cfg.Auth, auth.Options{Conn: conn, Database: db,
//		DataDir: cfg.DataDir, Node: cfg.Cluster.NodeName, Logger: log})
//	// after store.Migrate; run a.Run(ctx) in the run group and stop it after
//	// the listeners, so the audit entries of their last requests are written.
//
//	// Admin API: one route table; every pattern goes through Protect.
//	routes := auth.Routes{
//		"GET /healthz": auth.Public, "GET /readyz": auth.Public,
//		"GET /metrics": auth.Allow(auth.Reader),
//		"GET /v1/cluster": auth.Allow(auth.Reader),
//		"GET /v1/jobs/{id}": auth.Allow(auth.Reader),
//	}.With(auth.TokenRoutes)
//	for pattern, h := range a.TokenHandlers() {
//		mux.Handle(pattern, a.Protect(routes, pattern, h))
//	}
//	// test: routes.Missing(adminServer.Patterns()) must be empty.
//
//	// OTLP: HTTP receiver (every request is data: denials audited only)
//	otlpHTTP := a.RequireData(auth.Allow(auth.Agent), otlpHandler)
//	// gRPC receiver
//	grpc.NewServer(grpc.ChainUnaryInterceptor(a.UnaryInterceptor(auth.Allow(auth.Agent))),
//		grpc.ChainStreamInterceptor(a.StreamInterceptor(auth.Allow(auth.Agent))))
//
//	// SIGHUP: a.Reload(ctx) re-reads tokens_file (and ClickHouse).
//
// Errors: 401 (WWW-Authenticate: Bearer) for a missing, malformed, unknown
// or revoked token, 403 for a valid token of another role, both with the
// JSON body {"error": "..."}; gRPC codes.Unauthenticated and
// codes.PermissionDenied.
//
// # Audit
//
// Require writes one audit_log row for every state-changing request it lets
// through (method not GET/HEAD/OPTIONS) and one for every denial; handlers
// add the object they acted on with Note. Entries go through a bounded
// queue (Audit never blocks; a full queue drops and counts) and are written
// in batches by Run. Denials are rate-limited per remote host and token
// name (3 a minute written, the rest summed into one row), with at most
// 1024 such keys a minute, so a flood of bad tokens grows neither memory
// nor the table without bound.
//
// docs/security.md is the operator's guide.
package auth
