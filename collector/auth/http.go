package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type principalKey struct{}

type noteKey struct{}

// note is what a handler adds to its request's audit entry.
type note struct{ target, detail string }

// FromContext returns the Principal that Require (or a gRPC interceptor)
// authenticated for the request whose context ctx is.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p (for tests and for callers that
// authenticate by other means).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Note sets the target and a detail of the audit entry that Require writes
// for the request of ctx (e.g. the name of the token a POST /v1/tokens
// created, which is not in its path). It does nothing outside Require or
// for a request that is not audited; empty arguments leave a field as is.
func Note(ctx context.Context, target, detail string) {
	if n, ok := ctx.Value(noteKey{}).(*note); ok {
		if target != "" {
			n.target = target
		}
		if detail != "" {
			n.detail = detail
		}
	}
}

// Require wraps h so that only a request with a token that access permits
// reaches it: no or an invalid token is answered 401 (with
// WWW-Authenticate: Bearer), a valid token of another role 403, both with a
// JSON body {"error": "..."} and an audit entry (rate-limited). A request
// let through carries its Principal (FromContext); when it changes state
// (any method but GET, HEAD, OPTIONS) its outcome is audited once h
// returns: ok below status 400, failed from 400. A Public access lets every
// request through untouched.
func (a *Authenticator) Require(access Access, h http.Handler) http.Handler {
	return a.guard(access, h, true)
}

// RequireData is Require for data paths whose every request is a write
// (OTLP export, feedback, inference): denials are audited, accepted
// requests are not.
func (a *Authenticator) RequireData(access Access, h http.Handler) http.Handler {
	return a.guard(access, h, false)
}

// Protect is Require with the access that rt gives pattern. A pattern
// without an entry is logged as an error and gets the zero Access (admin
// tokens only), so a route forgotten in the table fails closed; the
// server's route-table test (Routes.Missing) catches it before a release.
func (a *Authenticator) Protect(rt Routes, pattern string, h http.Handler) http.Handler {
	access, ok := rt.Access(pattern)
	if !ok {
		a.log.Error("auth: route has no entry in the route table; only admin tokens may call it", "pattern", pattern)
	}
	return a.Require(access, h)
}

func (a *Authenticator) guard(access Access, h http.Handler, auditWrites bool) http.Handler {
	if access.IsPublic() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r)
		if err != nil {
			a.Deny(r.Context(), Entry{Token: p.Name, Action: action(r), Target: r.URL.Path, Remote: r.RemoteAddr,
				Detail: "401: " + err.Error()})
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			WriteError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if !access.Permits(p.Role) {
			msg := fmt.Sprintf("token %q has role %s; %s needs %s", p.Name, p.Role, action(r), access)
			a.Deny(r.Context(), Entry{Token: p.Name, Role: p.Role, Action: action(r), Target: r.URL.Path,
				Remote: r.RemoteAddr, Detail: "403: " + msg})
			WriteError(w, http.StatusForbidden, msg)
			return
		}
		if err := scopeAllows(p, r); err != nil {
			a.Deny(r.Context(), Entry{Token: p.Name, Role: p.Role, Action: action(r), Target: r.URL.Path,
				Remote: r.RemoteAddr, Detail: "403: " + err.Error()})
			WriteError(w, http.StatusForbidden, err.Error())
			return
		}
		a.serveAs(w, r, h, p, auditWrites)
	})
}

// serveAs serves r with h as the authenticated principal p; when audit is
// set and r changes state, the outcome (status and h's note) is audited.
func (a *Authenticator) serveAs(w http.ResponseWriter, r *http.Request, h http.Handler, p Principal, audit bool) {
	ctx := WithPrincipal(r.Context(), p)
	if !audit || !changesState(r.Method) {
		h.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	n := &note{target: r.URL.Path}
	rec := &statusRecorder{ResponseWriter: w}
	h.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, noteKey{}, n)))
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	result := ResultOK
	if status >= 400 {
		result = ResultFailed
	}
	detail := strconv.Itoa(status)
	if n.detail != "" {
		detail += ": " + n.detail
	}
	a.Audit(ctx, Entry{Token: p.Name, Role: p.Role, Action: action(r), Target: n.target, Result: result,
		Remote: r.RemoteAddr, Detail: detail})
}

// action is "METHOD /pattern" (the ServeMux pattern that matched, else the
// path).
func action(r *http.Request) string {
	if r.Pattern != "" {
		if r.Pattern[0] == '/' {
			return r.Method + " " + r.Pattern
		}
		return r.Pattern
	}
	return r.Method + " " + r.URL.Path
}

func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// WriteError answers status with the JSON body {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// TokenRoutes are the routes of the token API (TokenHandlers): admin only.
var TokenRoutes = Routes{
	"GET /v1/tokens":           Allow(Admin),
	"POST /v1/tokens":          Allow(Admin),
	"DELETE /v1/tokens/{name}": Allow(Admin),
}

// CreateRequest is the body of POST /v1/tokens.
type CreateRequest struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// CreateResponse is the answer to POST /v1/tokens: the token (shown this
// once) and what is stored of it.
type CreateResponse struct {
	// Secret is the token itself; JSON "token".
	Secret string `json:"token"`
	TokenInfo
}

// TokenInfo is a token as the admin API lists it (docs/admin-api.md, GET
// /v1/tokens): never the token, only its sha256. Every field is present;
// CreatedBy is null for the tokens the collector bootstrapped and those of
// tokens_file, LastUsed null while this collector has not seen the token
// used since it started, Revoked (the time) and RevokedBy null while the
// token is valid.
type TokenInfo struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	SHA256    string     `json:"sha256"`
	Source    Source     `json:"source"`
	Created   time.Time  `json:"created"`
	CreatedBy *string    `json:"created_by"`
	LastUsed  *time.Time `json:"last_used"`
	Revoked   *time.Time `json:"revoked"`
	RevokedBy *string    `json:"revoked_by"`
}

// info returns t as the admin API shows it.
func (a *Authenticator) info(t Token) TokenInfo {
	ti := TokenInfo{Name: t.Name, Role: t.Role, SHA256: t.SHA256, Source: t.Source, Created: t.Created.UTC(),
		LastUsed: a.lastUse(t.Name)}
	if t.CreatedBy != "" && t.Source != SourceTokensFile && t.CreatedBy != "bootstrap" && !strings.HasPrefix(t.CreatedBy, "bootstrap on ") {
		by := t.CreatedBy
		ti.CreatedBy = &by
	}
	if t.Revoked {
		at := t.Created.UTC()
		if t.RevokedAt != nil {
			at = t.RevokedAt.UTC()
		}
		ti.Revoked = &at
		if t.RevokedBy != "" {
			by := t.RevokedBy
			ti.RevokedBy = &by
		}
	}
	return ti
}

// TokenHandlers returns the token API's handlers by pattern, for the admin
// server to register through Protect with its Routes (which include
// TokenRoutes):
//
//	GET /v1/tokens             → 200, a JSON array of TokenInfo
//	POST /v1/tokens {name, role} → 201, CreateResponse; 400 bad name or
//	                               role, 409 name taken
//	DELETE /v1/tokens/{name}   → 200, the revoked TokenInfo; 404 unknown, 409
//	                               defined in tokens_file
//
// Errors are JSON {"error": "..."}; 503 when ClickHouse cannot be reached.
// created_by and revoked_by are the caller's token name.
func (a *Authenticator) TokenHandlers() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /v1/tokens": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			list := a.List()
			out := make([]TokenInfo, 0, len(list))
			for _, t := range list {
				out = append(out, a.info(t))
			}
			writeJSON(w, http.StatusOK, out)
		}),
		"POST /v1/tokens": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req CreateRequest
			dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				WriteError(w, http.StatusBadRequest, "body: want {\"name\": ..., \"role\": ...}: "+err.Error())
				return
			}
			Note(r.Context(), req.Name, "role "+string(req.Role))
			if err := CheckName(req.Name); err != nil {
				WriteError(w, http.StatusBadRequest, err.Error())
				return
			}
			if _, err := ParseRole(string(req.Role)); err != nil {
				WriteError(w, http.StatusBadRequest, err.Error())
				return
			}
			tok, t, err := a.Create(r.Context(), req.Name, req.Role, caller(r.Context()))
			if err != nil {
				writeManageError(w, err)
				return
			}
			writeJSON(w, http.StatusCreated, CreateResponse{Secret: tok, TokenInfo: a.info(t)})
		}),
		"DELETE /v1/tokens/{name}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
			Note(r.Context(), name, "")
			t, err := a.Revoke(r.Context(), name, caller(r.Context()))
			if err != nil {
				writeManageError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, a.info(t))
		}),
	}
}

func caller(ctx context.Context) string {
	if p, ok := FromContext(ctx); ok {
		return p.Name
	}
	return "unknown"
}

func writeManageError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable // ClickHouse could not be reached
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrReadOnly), errors.Is(err, ErrDisabled), errors.Is(err, ErrNoStore):
		status = http.StatusConflict
	}
	WriteError(w, status, err.Error())
}
