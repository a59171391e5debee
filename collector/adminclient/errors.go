package adminclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// APIError is an HTTP error status from a collector: the request reached
// it and it said no.
type APIError struct {
	// Method and URL are the request's.
	Method, URL string
	// Status is the HTTP status code, like 404.
	Status int
	// Message is the server's reason: the "error" field of a JSON body
	// ({"error": "..."}), else the body's text, else the status text.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// IsStatus reports whether err is an *APIError with one of the statuses.
func IsStatus(err error, statuses ...int) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, s := range statuses {
		if ae.Status == s {
			return true
		}
	}
	return false
}

func newAPIError(method, url string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Method: method, URL: url, Status: resp.StatusCode}
	var doc struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Error != nil {
		e.Message = *doc.Error
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// Attempt is one collector a request was sent to and why it failed.
type Attempt struct {
	URL string
	Err error
}

// UnreachableError says that no collector answered a request.
type UnreachableError struct {
	// Method and Path are the request's.
	Method, Path string
	// Attempts lists the collectors tried, in order, with their errors.
	Attempts []Attempt
	// Stopped is true when the client did not try the remaining URLs
	// because the failed request (a write) may have reached the collector.
	Stopped bool
}

func (e *UnreachableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: no collector reachable", e.Method, e.Path)
	for _, a := range e.Attempts {
		fmt.Fprintf(&b, "; %s: %v", a.URL, a.Err)
	}
	if e.Stopped {
		b.WriteString(" (not retried on another collector: the request may have been received)")
	}
	return b.String()
}

// Unwrap returns the attempts' errors, for errors.Is and errors.As.
func (e *UnreachableError) Unwrap() []error {
	errs := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		errs[i] = a.Err
	}
	return errs
}
