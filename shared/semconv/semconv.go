// Package semconv defines Drover's telemetry contract: the names of metrics,
// attributes and events that agents send and collectors store. They are
// documented in docs/metrics.md; change them only together with a storage
// migration.
package semconv

// Resource attributes every agent sends.
const (
	ServiceNameAgent   = "drover-agent"    // service.name of agents
	AttrAgentID        = "drover.agent.id" // a stable id of the agent (host + data dir)
	AttrHostName       = "host.name"       // OTel's host.name
	AttrServiceName    = "service.name"    // OTel's service.name
	AttrServiceVersion = "service.version" // OTel's service.version: the agent's build version
)

// Attributes on data points and events.
const (
	AttrModel        = "drover.model"         // model name
	AttrModelVersion = "drover.model.version" // model version, decimal string
	AttrProtocol     = "drover.protocol"      // rest or grpc
	AttrStatus       = "drover.status"        // outcome: ok, bad_request, not_found, unavailable, timeout, error
	AttrFeature      = "drover.feature"       // input feature or output name of a distribution
	AttrFeatureKind  = "drover.feature.kind"  // input or output
	AttrMetric       = "drover.eval.metric"   // evaluation metric: accuracy, f1, mse, ...
	AttrClass        = "drover.eval.class"    // class label for per-class metrics
	AttrSource       = "drover.eval.source"   // labels, golden, shadow
	AttrRole         = "drover.route.role"    // primary, canary, shadow
	AttrEventKind    = "drover.event"         // event kind (see Event*)
	AttrReason       = "drover.reason"        // why: load failure, rejection
	AttrPrevious     = "drover.model.previous_version"
	AttrRequestID    = "drover.request.id"
)

// Metric names.
const (
	MetricRequests       = "drover.requests"              // counter: inference requests by model, version, protocol, status
	MetricRequestLatency = "drover.request.duration"      // histogram (s): inference latency
	MetricInFlight       = "drover.requests.in_flight"    // up-down counter
	MetricLoadDuration   = "drover.model.load.duration"   // histogram (s): load + check + warm-up
	MetricLoadFailures   = "drover.model.load.failures"   // counter by model, version
	MetricSwaps          = "drover.model.swaps"           // counter by model
	MetricLoadedVersions = "drover.model.loaded_versions" // gauge by model
	MetricEval           = "drover.eval"                  // gauge: evaluation metric value by model, version, metric, source
	MetricSamples        = "drover.samples"               // counter: sampled requests by model, version
	MetricFeedback       = "drover.feedback"              // counter: labels received by model, version, status (joined, unknown, expired, invalid)
	MetricDistribution   = "drover.distribution"          // histogram: feature/output values by model, version, feature
	MetricDistInvalid    = "drover.distribution.invalid"  // counter: NaN or infinite values left out of a distribution
	MetricShadowAgree    = "drover.shadow.agreement"      // gauge: share of shadow answers agreeing with the primary
	MetricShadowMAD      = "drover.shadow.mean_abs_diff"  // gauge: mean |shadow - primary| (regression)
	MetricShadowDropped  = "drover.shadow.dropped"        // counter: shadow copies dropped (queue full)
	MetricShadowLatency  = "drover.shadow.duration"       // histogram (s): shadow inference latency by model, version
	MetricEventsDropped  = "drover.events.dropped"        // counter: events and samples dropped (export queue full) by event kind
	MetricPanics         = "drover.agent.panics"          // counter: handler panics recovered (answered 500 / Internal) by protocol
)

// Event kinds, sent as OTLP log records with AttrEventKind.
const (
	EventLoaded     = "version.loaded"
	EventSwapped    = "version.swapped"
	EventRejected   = "version.rejected"
	EventRolledBack = "version.rolled_back"
	EventLoadFailed = "version.load_failed"
	EventUnloaded   = "version.unloaded"
	EventSample     = "sample" // a sampled request: inputs, outputs, id, version (training data)
)
