package auth

import (
	"slices"
	"testing"

	"github.com/drover-ml/drover/shared/tokens"
)

// TestRoleMatrix is every role against every single-role requirement and a
// few combined ones: admin satisfies all, every other role only its own.
func TestRoleMatrix(t *testing.T) {
	allow := map[Role][]Role{ // token role -> the requirements it satisfies
		Admin:     {Admin, Reader, Publisher, Agent, Client},
		Reader:    {Reader},
		Publisher: {Publisher},
		Agent:     {Agent},
		Client:    {Client},
	}
	for _, have := range Roles {
		for _, need := range Roles {
			want := slices.Contains(allow[have], need)
			if got := have.Satisfies(need); got != want {
				t.Errorf("%s.Satisfies(%s) = %v, want %v", have, need, got, want)
			}
			if got := Allow(need).Permits(have); got != want {
				t.Errorf("Allow(%s).Permits(%s) = %v, want %v", need, have, got, want)
			}
		}
	}
	for name, tc := range map[string]struct {
		access Access
		want   []Role
	}{
		"reader or agent (blob reads)": {Allow(Reader, Agent), []Role{Admin, Reader, Agent}},
		"publisher or client":          {Allow(Publisher, Client), []Role{Admin, Publisher, Client}},
		"admin only":                   {Allow(Admin), []Role{Admin}},
		"no roles means admin":         {Allow(), []Role{Admin}},
		"zero Access fails closed":     {Access{}, []Role{Admin}},
		"public":                       {Public, Roles},
	} {
		t.Run(name, func(t *testing.T) {
			for _, r := range Roles {
				if got, want := tc.access.Permits(r), slices.Contains(tc.want, r); got != want {
					t.Errorf("%s permits %s = %v, want %v", tc.access, r, got, want)
				}
			}
			if tc.access.Permits("root") || tc.access.Permits("") {
				if !tc.access.IsPublic() {
					t.Errorf("%s permits an unknown role", tc.access)
				}
			}
		})
	}
	if Role("root").Satisfies(Reader) || Reader.Satisfies("root") || !Admin.Satisfies("root") {
		t.Error("unknown roles: want nothing satisfied by one, only admin satisfying one")
	}
	if got := Allow(Reader, Agent).String(); got != "admin|reader|agent" {
		t.Errorf("String = %q", got)
	}
	if zero := (Access{}); Public.String() != "public" || zero.String() != "admin" {
		t.Errorf("String: public %q, zero %q", Public.String(), zero.String())
	}
}

func TestAllowPanicsOnUnknownRole(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Allow(\"writer\") did not panic")
		}
	}()
	Allow("writer")
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "public", "admin "} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

func TestRoutesMissingAndUnused(t *testing.T) {
	rt := Routes{
		"GET /healthz":    Public,
		"GET /metrics":    Allow(Reader),
		"GET /v1/old":     Allow(Reader),
		"POST /v1/models": Allow(Publisher),
	}
	registered := []string{"GET /healthz", "GET /metrics", "POST /v1/models", "GET /v1/cluster", "/v1/jobs/", "GET /v1/cluster"}
	if got, want := rt.Missing(registered), []string{"/v1/jobs/", "GET /v1/cluster"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
	if got, want := rt.Unused(registered), []string{"GET /v1/old"}; !slices.Equal(got, want) {
		t.Errorf("Unused = %q, want %q", got, want)
	}
	if a, ok := rt.Access("GET /v1/cluster"); ok || a != (Access{}) || a.Permits(Reader) {
		t.Errorf("Access of a missing route = %v, %v; want the zero Access (admin only)", a, ok)
	}
	all := rt.With(TokenRoutes)
	if len(all) != len(rt)+len(TokenRoutes) || len(rt) != 4 {
		t.Errorf("With: %d entries (rt %d), want %d", len(all), len(rt), len(rt)+len(TokenRoutes))
	}
}

// TestRolesAreTheSharedList: the roles are the list shared/tokens checks
// tokens_file entries against (the agent reads the same files).
func TestRolesAreTheSharedList(t *testing.T) {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	if !slices.Equal(names, tokens.RoleNames) {
		t.Fatalf("auth.Roles = %v, tokens.RoleNames = %v", names, tokens.RoleNames)
	}
}
