package admin

import (
	"slices"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/optimize"
	"github.com/drover-ml/drover/collector/registry"
)

// The admin API's table of required roles (docs/admin-api.md, "Endpoints").
// Every pattern the Server registers must have an entry here, or Handle
// panics: no route can be left open by mistake. The route/role test of
// collector/server checks the table against the patterns a real collector
// registers (Server.Patterns), both ways.
var (
	reader    = auth.Allow(auth.Reader)
	admin     = auth.Allow(auth.Admin)
	publisher = auth.Allow(auth.Publisher)
	fetcher   = auth.Allow(auth.Reader, auth.Agent) // what an agent pulls
	agent     = auth.Allow(auth.Agent)
	labeller  = auth.Allow(auth.Client, auth.Agent) // an application's labels; an agent forwards those it did not sample
	jobReader = auth.Allow(auth.Reader, auth.Publisher)
)

// routes is the table without the token API's routes (auth.TokenRoutes),
// which Routes adds.
var routes = auth.Routes{
	// Open: liveness and readiness, for probes and `droverctl status`.
	"GET /healthz": auth.Public,
	"GET /readyz":  auth.Public,

	"GET /metrics":    reader,
	"GET /v1/cluster": reader,

	// The read views (collector/views).
	"GET /v1/models":                  reader,
	"GET /v1/models/{model}/versions": reader,
	"GET /v1/models/{model}/diff":     reader,
	"GET /v1/models/{model}/drift":    reader,
	"GET /v1/incidents":               reader,
	"GET /v1/models/{model}/history":  reader,

	// The model registry (collector/registry, docs/registry.md).
	registry.PatternPublish: publisher,
	registry.PatternMerge:   publisher,
	registry.PatternStage:   publisher,
	registry.PatternCommit:  publisher, // committed on the ring owner, with the caller's token
	registry.PatternVersion: fetcher,
	registry.PatternFiles:   fetcher,
	registry.PatternBlob:    fetcher,
	registry.PatternDelete:  admin,

	// Labels fleet-wide (collector/labels, docs/fleet.md).
	labels.Pattern: labeller,

	// Fleet control (collector/fleet, docs/fleet.md): reads, changes
	// (applied on the model's ring owner, with the caller's token) and the
	// agents' control channel.
	fleet.PatternAgents:    reader,
	fleet.PatternDesired:   reader,
	fleet.PatternHistory:   reader,
	fleet.PatternStatus:    reader,
	fleet.PatternRollout:   admin,
	fleet.PatternRollback:  admin,
	fleet.PatternPin:       admin,
	fleet.PatternUnpin:     admin,
	fleet.PatternCanary:    admin,
	fleet.PatternPromote:   admin,
	fleet.PatternAbort:     admin,
	fleet.PatternShadow:    admin,
	fleet.PatternRegister:  agent,
	fleet.PatternInventory: agent,
	fleet.PatternPoll:      agent,

	// Jobs (collector/jobs).
	"GET /v1/jobs":              reader,
	"GET /v1/jobs/{id}":         jobReader, // a publisher follows the job it started (droverctl optimize --wait)
	"POST /v1/jobs/{id}/retry":  admin,
	"POST /v1/jobs/{id}/cancel": admin,
	// The built-in optimizer's search on an uploaded CSV (collector/optimize,
	// docs/optimize.md).
	optimize.PatternCSV: publisher,
	// The webhook receiver's callback is authenticated by its signature
	// (docs/jobs.md), not by a token.
	"POST /v1/jobs/{id}/status": auth.Public,
	// A manual incident and its job (droverctl optimize MODEL).
	jobs.PatternOptimize: publisher,
}

// dataRoutes are the data-plane routes of the table: authenticated and
// role-checked as their entries say, denials audited, accepted calls not
// audited (auth.Authenticator.RequireData, as the OTLP receivers). They
// are what every agent sends every heartbeat interval, or an application
// with every label: auditing each would fill audit_log with rows that say
// nothing a person did (docs/fleet.md, docs/security.md). Changes of the
// desired state, registry writes and token changes stay audited.
var dataRoutes = []string{
	fleet.PatternRegister,  // at each start of an agent, and after a collector restart
	fleet.PatternInventory, // a heartbeat every 10 s per agent
	fleet.PatternPoll,      // a GET: never audited; listed to say so
	labels.Pattern,         // labels: one call per labelled request, from applications and agents
}

// DataRoutes returns the patterns of the route table served as data-plane
// routes (Server.Handle): each has an entry in Routes() that is not
// public. Each call returns a new slice.
func DataRoutes() []string { return slices.Clone(dataRoutes) }

// Routes returns the admin API's route table: every route's required
// access, the token API's (auth.TokenRoutes: admin) included. Each call
// returns a new map, which the caller may change.
func Routes() auth.Routes {
	return routes.With(auth.TokenRoutes)
}
