package semconv

// Values of AttrStatus on drover.requests and drover.request.duration: the
// outcome of an inference request as the agent answered it.
const (
	StatusOK          = "ok"
	StatusBadRequest  = "bad_request" // 400, 413: invalid input, a request over the size or batch limits
	StatusNotFound    = "not_found"   // 404: an unknown version of a model the agent has
	StatusCancelled   = "cancelled"   // 499: the client went away before the answer
	StatusUnavailable = "unavailable" // 503: no version ready, the agent stopping, max_in_flight reached
	StatusTimeout     = "timeout"     // 504: inference exceeded the request timeout
	StatusError       = "error"       // 500: any other failure of the server
)

// ServerErrorStatuses are the outcomes the serving side answers for: the
// only ones the collector's error-rate drift signal counts as errors. The
// rest (ok aside) are caused by the client (bad input, unknown versions,
// cancelled requests, and any status not listed here) and are left out of
// the error rate entirely, numerator and denominator, so that a client
// cannot raise it (or dilute it) by sending bad requests.
var ServerErrorStatuses = []string{StatusError, StatusTimeout, StatusUnavailable}
