package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/drover-ml/drover/collector/adminclient"
)

// Exit codes, as docs/droverctl.md documents them.
const (
	ExitOK          = 0
	ExitError       = 1 // anything else, the collectors unreachable among them
	ExitUsage       = 2 // a wrong command line
	ExitNotFound    = 3 // 404
	ExitDenied      = 4 // 401, 403
	ExitRefused     = 5 // 409
	exitUnreachable = ExitError
)

// ExitCode maps a command's error to droverctl's exit code. It is the only
// place that does.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if IsUsage(err) {
		return ExitUsage
	}
	var re *reportedError
	if errors.As(err, &re) && re.err == nil {
		return ExitError
	}
	var ae *adminclient.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusNotFound:
			return ExitNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return ExitDenied
		case http.StatusConflict:
			return ExitRefused
		}
		return ExitError
	}
	var ue *adminclient.UnreachableError
	if errors.As(err, &ue) {
		return exitUnreachable
	}
	return ExitError
}

// PrintError writes err for a person to w, in the words its exit code
// stands for: the URLs tried when no collector answered, the server's
// reason for a denial, a refusal or a missing object.
func PrintError(w io.Writer, err error) {
	if err == nil {
		return
	}
	var (
		ae *adminclient.APIError
		ue *adminclient.UnreachableError
	)
	var re *reportedError
	switch {
	case errors.As(err, &re):
		// The command has said what went wrong.
	case IsUsage(err):
		fmt.Fprintf(w, "droverctl: %v\nRun 'droverctl --help' for usage.\n", err)
	case errors.As(err, &ue):
		fmt.Fprintf(w, "droverctl: collector unreachable (%s %s); tried:\n", ue.Method, ue.Path)
		for _, a := range ue.Attempts {
			fmt.Fprintf(w, "  %s: %v\n", a.URL, a.Err)
		}
		if ue.Stopped {
			fmt.Fprintln(w, "  (the other collectors were not tried: the request may have been received)")
		}
		if hint := tlsHint(err); hint != "" {
			fmt.Fprintf(w, "  (%s)\n", hint)
		}
	case errors.As(err, &ae):
		var what string
		switch ExitCode(err) {
		case ExitNotFound:
			what = "not found"
		case ExitDenied:
			what = "denied"
		case ExitRefused:
			what = "refused"
		default:
			what = "error"
		}
		fmt.Fprintf(w, "droverctl: %s: %s (%s %s: %d %s)\n", what, ae.Message, ae.Method, ae.URL, ae.Status, http.StatusText(ae.Status))
	default:
		fmt.Fprintf(w, "droverctl: %v\n", err)
	}
}

// tlsHint says what to do about a TLS failure among err's: a collector
// certificate that no given CA verifies, or a collector that wants a
// client certificate; "" for other errors.
func tlsHint(err error) string {
	var (
		ua x509.UnknownAuthorityError
		cv *tls.CertificateVerificationError
		he x509.HostnameError
	)
	switch {
	case errors.Is(err, adminclient.ErrNoClientCertificate):
		return "the collector requires a client certificate signed by its admin.tls.client_ca_file; give one with --tls-cert and --tls-key"
	case errors.As(err, &he):
		return "the collector's certificate does not name the host of --collector; use a name or address it lists"
	case errors.As(err, &ua), errors.As(err, &cv):
		return "the collector's TLS certificate is not signed by a CA droverctl trusts; give its CA with --tls-ca or $DROVER_TLS_CA"
	}
	for _, s := range []string{"certificate required", "bad certificate", "unknown certificate authority"} {
		if strings.Contains(err.Error(), s) {
			return "the collector refused the TLS handshake: it requires a client certificate its admin.tls.client_ca_file signed; give one with --tls-cert and --tls-key"
		}
	}
	return ""
}

// reportedError is an error the command has already printed; its exit
// code is that of err (1 when nil).
type reportedError struct{ err error }

func (e *reportedError) Error() string {
	if e.err == nil {
		return "failed"
	}
	return e.err.Error()
}
func (e *reportedError) Unwrap() error { return e.err }
