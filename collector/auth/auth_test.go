package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

// bootstrapped returns an Authenticator on a fresh migrated database after
// its bootstrap, and the admin token it wrote.
func bootstrapped(t *testing.T) (*testenv.DB, *Authenticator, string) {
	t.Helper()
	db := migrated(t)
	dir := t.TempDir()
	a := newAuth(t, db.Conn, db.Name, dir, testConfig())
	return db, a, strings.TrimSpace(readFile(t, filepath.Join(dir, AdminTokenFile)))
}

func TestCreateListRevokeRoundTrip(t *testing.T) {
	db, a, _ := bootstrapped(t)
	ctx := context.Background()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return clock }

	tok, info, err := a.Create(ctx, "ci-publisher", Publisher, "admin-x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix) || info.SHA256 != Hash(tok) || info.Role != Publisher ||
		info.CreatedBy != "admin-x" || !info.Created.Equal(clock) || info.Revoked || info.Source != SourceClickHouse {
		t.Errorf("Create returned %q, %+v", tok, info)
	}
	if p, err := principal(a, tok); err != nil || p != (Principal{Name: "ci-publisher", Role: Publisher}) {
		t.Errorf("new token: %+v, %v; want ci-publisher/publisher at once", p, err)
	}
	if n := db.Count(t, "SELECT count() FROM tokens FINAL WHERE name = 'ci-publisher' AND sha256 = ? AND role = 'publisher' AND revoked = 0", Hash(tok)); n != 1 {
		t.Errorf("tokens has %d live rows for ci-publisher, want 1", n)
	}
	if n := db.Count(t, "SELECT count() FROM tokens WHERE position(sha256, 'drover_') > 0 OR position(name, 'drover_') > 0"); n != 0 {
		t.Errorf("a token itself was stored")
	}
	list := a.List()
	i := slices.IndexFunc(list, func(t Token) bool { return t.Name == "ci-publisher" })
	if len(list) != 3 || i < 0 || list[i].SHA256 != Hash(tok) {
		t.Errorf("List = %+v, want the two bootstrap tokens and ci-publisher", list)
	}
	if _, _, err := a.Create(ctx, "ci-publisher", Reader, "admin-x"); !errors.Is(err, ErrExists) {
		t.Errorf("second create of a name: %v, want ErrExists", err)
	}
	if _, _, err := a.Create(ctx, "Bad Name", Reader, "x"); err == nil || !strings.Contains(err.Error(), "token name") {
		t.Errorf("bad name: %v", err)
	}
	if _, _, err := a.Create(ctx, "x", "root", "x"); err == nil || !strings.Contains(err.Error(), `role "root"`) {
		t.Errorf("bad role: %v", err)
	}

	clock = clock.Add(time.Hour)
	rev, err := a.Revoke(ctx, "ci-publisher", "admin-y")
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Revoked || rev.RevokedBy != "admin-y" || rev.RevokedAt == nil || !rev.RevokedAt.Equal(clock) {
		t.Errorf("Revoke returned %+v", rev)
	}
	if p, err := principal(a, tok); !errors.Is(err, ErrRevoked) || p.Name != "ci-publisher" {
		t.Errorf("revoked token: %+v, %v; want ErrRevoked naming it", p, err)
	}
	if n := db.Count(t, "SELECT count() FROM tokens FINAL WHERE name = 'ci-publisher' AND revoked = 1 AND revoked_by = 'admin-y'"); n != 1 {
		t.Errorf("tokens FINAL has %d revoked rows for ci-publisher, want 1", n)
	}
	if again, err := a.Revoke(ctx, "ci-publisher", "someone-else"); err != nil || again.RevokedBy != "admin-y" {
		t.Errorf("revoking again: %+v, %v; want the first revoke, no error", again, err)
	}
	if _, err := a.Revoke(ctx, "nobody", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v, want ErrNotFound", err)
	}
	if _, _, err := a.Create(ctx, "ci-publisher", Publisher, "x"); !errors.Is(err, ErrExists) {
		t.Errorf("re-create a revoked name: %v, want ErrExists", err)
	}
	if _, err := principal(a, "drover_nosuchtoken"); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("unknown token: %v", err)
	}
}

// TestRevokeWinsOverCreate: a revoke row wins over a create row of the same
// name even when the create's clock was ahead (or the rows arrived in the
// other order).
func TestRevokeWinsOverCreate(t *testing.T) {
	db, a, _ := bootstrapped(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := now.Add(-time.Hour)
	revoked := dbToken{Token: Token{Name: "skewed", Role: Reader, SHA256: Hash("x"), Created: now, CreatedBy: "a",
		Revoked: true, RevokedAt: &at, RevokedBy: "b"}, RowVersion: revokedVersion | uint64(at.UnixMilli())}
	later := now.Add(24 * time.Hour) // a create from a collector whose clock is a day ahead, stored after the revoke
	created := dbToken{Token: Token{Name: "skewed", Role: Reader, SHA256: Hash("x"), Created: later, CreatedBy: "a"},
		RowVersion: uint64(later.UnixMilli())}
	if err := a.insertTokens(ctx, []dbToken{revoked}); err != nil {
		t.Fatal(err)
	}
	if err := a.insertTokens(ctx, []dbToken{created}); err != nil {
		t.Fatal(err)
	}
	if n := db.Count(t, "SELECT count() FROM tokens FINAL WHERE name = 'skewed' AND revoked = 1"); n != 1 {
		t.Errorf("FINAL keeps the create, want the revoke")
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := principal(a, "x"); !errors.Is(err, ErrRevoked) {
		t.Errorf("token after reload: %v, want ErrRevoked", err)
	}
}

// TestTwoCollectors: a token created on one collector is accepted by a
// second one on the same database after its refresh, and a revoke on the
// second is rejected by both.
func TestTwoCollectors(t *testing.T) {
	db, a, _ := bootstrapped(t)
	dirB := t.TempDir()
	b := newAuth(t, db.Conn, db.Name, dirB, testConfig())
	run(t, a)
	run(t, b)
	if _, err := os.Stat(filepath.Join(dirB, AdminTokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the second collector bootstrapped too (%v)", err)
	}
	ctx := context.Background()
	tok, _, err := a.Create(ctx, "shared", Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyNil(t, 30*time.Second, "the second collector accepting a token created on the first", func() error {
		_, err := principal(b, tok)
		return err
	})
	if _, err := b.Revoke(ctx, "shared", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := principal(b, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("on the revoking collector: %v, want ErrRevoked at once", err)
	}
	testenv.Eventually(t, 30*time.Second, "the first collector rejecting a token revoked on the second", func() bool {
		_, err := principal(a, tok)
		return errors.Is(err, ErrRevoked)
	})
}

// TestCacheWhenClickHouseDown: a collector restarted while ClickHouse is
// unreachable authenticates from its cache file, revokes included; one
// without a cache refuses to start.
func TestCacheWhenClickHouseDown(t *testing.T) {
	db, a, admin := bootstrapped(t)
	ctx := context.Background()
	live, _, err := a.Create(ctx, "live", Agent, "test")
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := a.Create(ctx, "gone", Agent, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Revoke(ctx, "gone", "test"); err != nil {
		t.Fatal(err)
	}
	dirB := t.TempDir()
	newAuth(t, db.Conn, db.Name, dirB, testConfig()) // fills dirB's cache
	cache := filepath.Join(dirB, CacheFile)
	if st, err := os.Stat(cache); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, %v; want mode 0600", st, err)
	}
	if c := readFile(t, cache); strings.Contains(c, live) || strings.Contains(c, TokenPrefix) || !strings.Contains(c, Hash(live)) {
		t.Errorf("cache file holds a token, or not the hash:\n%s", c)
	}

	// Restart with ClickHouse unreachable.
	logger, logs := newLogger()
	down := newAuth(t, unreachable(t), db.Name, dirB, testConfig(), func(o *Options) { o.Logger = logger })
	run(t, down)
	for tok, want := range map[string]Principal{live: {Name: "live", Role: Agent}, admin: {Name: principalName(t, a, admin), Role: Admin}} {
		if p, err := principal(down, tok); err != nil || p != want {
			t.Errorf("from the cache: %+v, %v; want %+v", p, err, want)
		}
	}
	if _, err := principal(down, gone); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked token from the cache: %v, want ErrRevoked", err)
	}
	if !strings.Contains(logs.String(), "authenticating with the cached tokens") {
		t.Errorf("no warning about ClickHouse being down:\n%s", logs)
	}
	if err := down.Reload(ctx); err == nil {
		t.Error("Reload with ClickHouse down succeeded")
	}
	if _, err := principal(down, live); err != nil {
		t.Errorf("after a failed refresh: %v", err)
	}
	if _, _, err := down.Create(ctx, "x", Reader, "t"); err == nil {
		t.Error("Create with ClickHouse down succeeded")
	}

	// Nothing cached, ClickHouse down: no start.
	if _, err := tryNew(unreachable(t), db.Name, t.TempDir(), testConfig()); err == nil || !strings.Contains(err.Error(), "no token is known") {
		t.Errorf("New without cache or ClickHouse: %v", err)
	}
}

func principalName(t *testing.T, a *Authenticator, tok string) string {
	t.Helper()
	p, err := principal(a, tok)
	if err != nil {
		t.Fatal(err)
	}
	return p.Name
}

// TestBootstrap: the first start writes admin.token and agent.token (0600,
// token and newline) whose tokens work with their roles, logs where; a
// restart writes nothing and creates nothing.
func TestBootstrap(t *testing.T) {
	db := migrated(t)
	dir := t.TempDir()
	logger, logs := newLogger()
	a := newAuth(t, db.Conn, db.Name, dir, testConfig(), func(o *Options) { o.Logger = logger })
	files := map[string]Role{AdminTokenFile: Admin, AgentTokenFile: Agent}
	contents := map[string]string{}
	mtimes := map[string]time.Time{}
	for f, role := range files {
		path := filepath.Join(dir, f)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
		c := readFile(t, path)
		if !strings.HasPrefix(c, TokenPrefix) || !strings.HasSuffix(c, "\n") || strings.Count(c, "\n") != 1 {
			t.Errorf("%s = %q, want a token and a newline", f, c)
		}
		p, err := principal(a, strings.TrimSuffix(c, "\n"))
		if err != nil || p.Role != role || !strings.HasPrefix(p.Name, string(role)+"-") {
			t.Errorf("%s's token: %+v, %v; want role %s", f, p, err, role)
		}
		if !strings.Contains(logs.String(), path) {
			t.Errorf("the log does not say where %s is:\n%s", f, logs)
		}
		contents[f], mtimes[f] = c, st.ModTime()
	}
	if n := db.Count(t, "SELECT count() FROM tokens"); n != 2 {
		t.Errorf("%d token rows after bootstrap, want 2", n)
	}
	if n := db.Count(t, "SELECT count() FROM tokens WHERE created_by = 'bootstrap on test-node'"); n != 2 {
		t.Errorf("%d bootstrap rows with created_by 'bootstrap on test-node', want 2", n)
	}
	run(t, a)
	testenv.Eventually(t, 30*time.Second, "audit rows of the bootstrap", func() bool {
		n, err := testenv.TryCount(db.Conn, "SELECT count() FROM audit_log WHERE action = 'token.bootstrap' AND result = 'ok'")
		return err == nil && n == 2
	})

	// A restart, and a second collector: nothing new.
	newAuth(t, db.Conn, db.Name, dir, testConfig())
	other := t.TempDir()
	newAuth(t, db.Conn, db.Name, other, testConfig())
	for f := range files {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || !st.ModTime().Equal(mtimes[f]) || readFile(t, filepath.Join(dir, f)) != contents[f] {
			t.Errorf("%s was rewritten by a restart", f)
		}
		if _, err := os.Stat(filepath.Join(other, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a second collector wrote %s", f)
		}
	}
	if n := db.Count(t, "SELECT count() FROM tokens"); n != 2 {
		t.Errorf("%d token rows after restarts, want 2", n)
	}
}

// TestConcurrentBootstrap: two collectors that start at once on an empty
// database may both bootstrap; every token either wrote works on both.
func TestConcurrentBootstrap(t *testing.T) {
	db := migrated(t)
	dirs := []string{t.TempDir(), t.TempDir()}
	as := make([]*Authenticator, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range as {
		wg.Go(func() { as[i], errs[i] = tryNew(db.Conn, db.Name, dirs[i], testConfig()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("collector %d: %v", i, err)
		}
	}
	ctx := context.Background()
	for _, a := range as {
		if err := a.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wrote := 0
	for _, dir := range dirs {
		for f, role := range map[string]Role{AdminTokenFile: Admin, AgentTokenFile: Agent} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			wrote++
			for i, a := range as {
				if p, err := principal(a, strings.TrimSpace(string(b))); err != nil || p.Role != role {
					t.Errorf("%s of %s on collector %d: %+v, %v", f, dir, i, p, err)
				}
			}
		}
	}
	if wrote != 2 && wrote != 4 {
		t.Errorf("%d bootstrap files written, want 2 (one collector) or 4 (both)", wrote)
	}
	if n := db.Count(t, "SELECT count() FROM tokens"); n != uint64(wrote) {
		t.Errorf("%d token rows, want %d (one per file)", n, wrote)
	}
}

// TestTokensFile: tokens_file alone (no ClickHouse), reloads, and together
// with ClickHouse tokens.
func TestTokensFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(entries ...string) {
		t.Helper()
		content := strings.Join(entries, "")
		// Written aside and renamed into place, so that the refresh loop
		// never reads a half-written (or empty: a valid, empty list) file.
		// A rewrite within the same mtime tick with the same size would be
		// missed; make the change visible.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Duration(len(content)) * time.Second)
		os.Chtimes(tmp, future, future)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(name string, role Role, token string) string {
		return "- name: " + name + "\n  role: " + string(role) + "\n  sha256: " + Hash(token) + "\n"
	}
	write(entry("grafana", Reader, "tok-grafana"), entry("ci", Publisher, "tok-ci"))
	cfg := testConfig()
	cfg.TokensFile = path

	t.Run("alone", func(t *testing.T) {
		dir := t.TempDir()
		a := newAuth(t, nil, "", dir, cfg)
		if p, err := principal(a, "tok-grafana"); err != nil || p != (Principal{Name: "grafana", Role: Reader}) {
			t.Errorf("grafana: %+v, %v", p, err)
		}
		if _, err := os.Stat(filepath.Join(dir, AdminTokenFile)); !errors.Is(err, os.ErrNotExist) {
			t.Error("bootstrapped although tokens_file has tokens")
		}
		if _, _, err := a.Create(ctx, "x", Reader, "t"); !errors.Is(err, ErrNoStore) {
			t.Errorf("Create without ClickHouse: %v, want ErrNoStore", err)
		}
		run(t, a)
		write(entry("grafana", Reader, "tok-grafana"), entry("agent-1", Agent, "tok-agent"))
		testenv.EventuallyNil(t, 30*time.Second, "the new token of a changed tokens_file", func() error {
			_, err := principal(a, "tok-agent")
			return err
		})
		if _, err := principal(a, "tok-ci"); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("a token removed from tokens_file: %v, want ErrUnknownToken", err)
		}
		write("- name: broken\n  role: root\n")
		if err := a.Reload(ctx); err == nil || !strings.Contains(err.Error(), "[0].role") {
			t.Errorf("Reload of a bad tokens_file: %v", err)
		}
		if _, err := principal(a, "tok-agent"); err != nil {
			t.Errorf("after a bad reload the previous tokens must stay: %v", err)
		}
		write(entry("grafana", Reader, "tok-grafana"))
	})

	t.Run("with ClickHouse", func(t *testing.T) {
		db := migrated(t)
		dir := t.TempDir()
		a := newAuth(t, db.Conn, db.Name, dir, cfg)
		if _, err := os.Stat(filepath.Join(dir, AdminTokenFile)); !errors.Is(err, os.ErrNotExist) {
			t.Error("bootstrapped although tokens_file has tokens")
		}
		if _, err := a.Revoke(ctx, "grafana", "t"); !errors.Is(err, ErrReadOnly) {
			t.Errorf("revoke a tokens_file token: %v, want ErrReadOnly", err)
		}
		if _, _, err := a.Create(ctx, "grafana", Reader, "t"); !errors.Is(err, ErrExists) {
			t.Errorf("create a tokens_file name: %v, want ErrExists", err)
		}
		tok, _, err := a.Create(ctx, "ops", Admin, "grafana")
		if err != nil {
			t.Fatal(err)
		}
		for token, want := range map[string]Principal{tok: {Name: "ops", Role: Admin}, "tok-grafana": {Name: "grafana", Role: Reader}} {
			if p, err := principal(a, token); err != nil || p != want {
				t.Errorf("%s: %+v, %v", want.Name, p, err)
			}
		}
		srcs := map[string]Source{}
		for _, tk := range a.List() {
			srcs[tk.Name] = tk.Source
		}
		if srcs["ops"] != SourceClickHouse || srcs["grafana"] != SourceTokensFile {
			t.Errorf("List sources: %v", srcs)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		c := cfg
		c.TokensFile = filepath.Join(t.TempDir(), "nope.yaml")
		if _, err := tryNew(nil, "", t.TempDir(), c); err == nil || !strings.Contains(err.Error(), "auth.tokens_file") {
			t.Errorf("New with a missing tokens_file: %v", err)
		}
	})
}

func TestDisabled(t *testing.T) {
	logger, logs := newLogger()
	cfg := testConfig()
	cfg.Disabled = true
	a, err := New(context.Background(), cfg, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "DISABLED") {
		t.Errorf("disabled auth was not logged as a warning:\n%s", logs)
	}
	if p, err := principal(a, ""); err != nil || p != DisabledPrincipal {
		t.Errorf("no token with auth disabled: %+v, %v", p, err)
	}
	if _, _, err := a.Create(context.Background(), "x", Reader, "t"); !errors.Is(err, ErrDisabled) {
		t.Errorf("Create with auth disabled: %v", err)
	}
	run(t, a)
}

func TestNewChecksItsInputs(t *testing.T) {
	if _, err := New(context.Background(), Config{}, Options{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "auth.refresh_interval") {
		t.Errorf("zero config: %v", err)
	}
	if _, err := New(context.Background(), testConfig(), Options{}); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Errorf("no data dir: %v", err)
	}
	if _, err := tryNew(nil, "", t.TempDir(), testConfig()); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("no ClickHouse and no tokens_file: %v", err)
	}
}
