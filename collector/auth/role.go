package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a token may do. The five roles are fixed; a token has exactly
// one.
type Role string

// The roles. Admin may do everything; every other role may do only what its
// own routes allow: no role implies another (a publisher cannot read fleet
// data unless it also holds a reader token, an agent cannot publish). A route
// that several roles may use says so with Allow(r1, r2).
const (
	// Admin may do everything, including managing tokens.
	Admin Role = "admin"
	// Reader may make every read request of the admin API and scrape
	// /metrics.
	Reader Role = "reader"
	// Publisher may publish versions and start an optimization by hand.
	Publisher Role = "publisher"
	// Agent is what a drover-agent does: the control channel, blob reads,
	// OTLP export.
	Agent Role = "agent"
	// Client is what an application does: feedback (labels), and inference
	// where an operator turns authentication on for it.
	Client Role = "client"
)

// Roles lists every role, most powerful first.
var Roles = []Role{Admin, Reader, Publisher, Agent, Client}

// ParseRole returns the role named s, or an error listing the roles.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.bit() == 0 {
		return "", fmt.Errorf("role %q: want one of %s", s, roleList())
	}
	return r, nil
}

func roleList() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

func (r Role) bit() uint8 {
	switch r {
	case Admin:
		return 1 << 0
	case Reader:
		return 1 << 1
	case Publisher:
		return 1 << 2
	case Agent:
		return 1 << 3
	case Client:
		return 1 << 4
	}
	return 0
}

// Satisfies reports whether a token of role r may do what needs role
// required: admin satisfies every requirement, any other role only its own.
// This is the whole partial order. An unknown role satisfies nothing, and
// an unknown requirement is satisfied by admin alone.
func (r Role) Satisfies(required Role) bool {
	if r.bit() == 0 {
		return false
	}
	return r == Admin || r == required
}

const publicBit = 1 << 7

// Access says who may make a request: the roles of which a token must hold
// one (Admin always among them), or Public (no token). It is comparable and
// small; the zero Access permits admin tokens only, so a route whose entry
// is missing fails closed.
type Access struct{ mask uint8 }

// Public is the Access of the routes open without a token (/healthz,
// /readyz, and routes that authenticate otherwise, such as a signed
// webhook callback).
var Public = Access{mask: publicBit}

// Allow returns the Access that permits a token of any of roles (and of
// Admin). It panics on a role that is not one of Roles: access is declared
// in code, and a typo must not open or close a route silently.
func Allow(roles ...Role) Access {
	a := Access{mask: Admin.bit()}
	for _, r := range roles {
		b := r.bit()
		if b == 0 {
			panic(fmt.Sprintf("auth.Allow: unknown role %q", r))
		}
		a.mask |= b
	}
	return a
}

// IsPublic reports whether a needs no token.
func (a Access) IsPublic() bool { return a.mask&publicBit != 0 }

// Permits reports whether a token of role r may make a request that needs a.
// A Public access permits every role (and no token at all).
func (a Access) Permits(r Role) bool {
	if a.IsPublic() {
		return true
	}
	if a.mask == 0 { // the zero Access: admin only
		return r == Admin
	}
	b := r.bit()
	return b != 0 && a.mask&b != 0
}

// Roles lists the roles a permits, in the order of Roles (nil for Public).
func (a Access) Roles() []Role {
	if a.IsPublic() {
		return nil
	}
	var out []Role
	for _, r := range Roles {
		if a.Permits(r) {
			out = append(out, r)
		}
	}
	return out
}

// String is "public" or the permitted roles joined by "|", e.g.
// "admin|reader".
func (a Access) String() string {
	if a.IsPublic() {
		return "public"
	}
	rs := a.Roles()
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = string(r)
	}
	return strings.Join(names, "|")
}

// Routes is the table of who may call each route of a server: a ServeMux
// pattern exactly as registered ("GET /v1/jobs/{id}", "/v1/jobs/") to its
// Access. A server keeps the patterns it registers and its tests check them
// against its Routes with Missing, so that a new route cannot be left
// without an entry by mistake.
type Routes map[string]Access

// Access returns the entry for pattern, or the zero Access (admin only) and
// false when there is none.
func (rt Routes) Access(pattern string) (Access, bool) {
	a, ok := rt[pattern]
	return a, ok
}

// Missing returns, sorted, the patterns that have no entry in rt.
func (rt Routes) Missing(patterns []string) []string {
	var out []string
	for _, p := range patterns {
		if _, ok := rt[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Unused returns, sorted, the entries of rt that name none of patterns
// (a route that was removed or renamed without its entry).
func (rt Routes) Unused(patterns []string) []string {
	registered := map[string]bool{}
	for _, p := range patterns {
		registered[p] = true
	}
	var out []string
	for p := range rt {
		if !registered[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// With returns a copy of rt with the entries of more added (more wins on a
// duplicate pattern).
func (rt Routes) With(more Routes) Routes {
	out := make(Routes, len(rt)+len(more))
	for p, a := range rt {
		out[p] = a
	}
	for p, a := range more {
		out[p] = a
	}
	return out
}
