package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Bootstrap files: the tokens created on a first start, in the data dir.
const (
	AdminTokenFile = "admin.token"
	AgentTokenFile = "agent.token"
)

// DisabledPrincipal is who every request is with auth.disabled: true.
var DisabledPrincipal = Principal{Name: "auth-disabled", Role: Admin}

// Errors. Authentication errors (ErrNoToken, ErrMalformed, ErrUnknownToken,
// ErrRevoked) are answered 401 / Unauthenticated, ErrForbidden 403 /
// PermissionDenied.
var (
	ErrUnknownToken = errors.New("unknown token")
	ErrRevoked      = errors.New("token revoked")
	ErrForbidden    = errors.New("the token's role does not allow this")
	// ErrExists: Create was given a name that a token has (or had: names of
	// revoked tokens are not reused).
	ErrExists = errors.New("a token with this name exists (names of revoked tokens are not reused)")
	// ErrNotFound: Revoke was given a name no token has.
	ErrNotFound = errors.New("no token with this name")
	// ErrReadOnly: the token is defined in auth.tokens_file; change the file.
	ErrReadOnly = errors.New("the token is defined in auth.tokens_file; remove it there")
	// ErrDisabled: token management with auth.disabled: true.
	ErrDisabled = errors.New("authentication is disabled (auth.disabled: true)")
	// ErrNoStore: token management without a ClickHouse connection.
	ErrNoStore = errors.New("no ClickHouse connection to store tokens in")
)

// Options are the Authenticator's dependencies.
type Options struct {
	// Conn is the collector's ClickHouse connection, migrated (tables
	// tokens and audit_log). Nil is allowed only with a tokens_file (or
	// auth disabled): no token can then be created or revoked, nothing is
	// bootstrapped, and audit entries go to the log.
	Conn driver.Conn
	// Database holds the tables; default "drover".
	Database string
	// DataDir is the collector's data dir: the token cache and the
	// bootstrap files go there. Required unless auth is disabled.
	DataDir string
	// Node is the collector's node name, written into audit_log and the
	// bootstrap tokens' created_by. Optional.
	Node string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock of created/revoked times, audit times, the
	// denial rate limit and job-token expiry; default time.Now.
	Now func() time.Time
	// JobTokenKey, when set, makes job tokens (IssueJobToken) signed with
	// it valid: role Publisher, for their model's publish routes only,
	// until they expire. Every collector of a cluster derives the same one
	// (JobTokenKey of the gossip key). Nil: job tokens are refused.
	JobTokenKey []byte
}

// Principal is who made a request: the token's name and role.
type Principal struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Model and Job are set for a job token (IssueJobToken) only: it may
	// publish Model only, through JobTokenRoutes.
	Model string `json:"model,omitempty"`
	Job   string `json:"job,omitempty"`
}

// view is an immutable snapshot of the accepted tokens, swapped atomically
// so that a request never takes a lock.
type view struct {
	live    map[[32]byte]Principal
	revoked map[[32]byte]string
	list    []Token
}

// Authenticator checks tokens and keeps them: the ClickHouse tokens table,
// cached in memory (a request never waits for ClickHouse) and in the data
// dir (authentication works while ClickHouse is down, across a restart
// too), plus the tokens of auth.tokens_file. It also writes the audit log.
// Every method is safe for concurrent use.
type Authenticator struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	now  func() time.Time

	view atomic.Pointer[view]

	// mu guards what follows, and serializes local changes (Create, Revoke,
	// bootstrap), the application of a refresh and cache-file writes.
	mu        sync.Mutex
	db        map[string]dbToken // ClickHouse rows by name
	pending   map[string]dbToken // local writes not yet seen in a refresh
	file      []Token
	fileStamp fileStamp
	lastCache []byte

	refreshMu   sync.Mutex // one refresh at a time (Run's loop, Reload)
	dbFailing   failLog
	fileFailing failLog
	cacheFail   failLog

	audit   auditor
	started atomic.Bool

	// lastUsed is when this collector last accepted each token (by name):
	// unix milliseconds in an *atomic.Int64.
	lastUsed sync.Map
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// New builds an Authenticator and makes sure tokens exist: it loads the
// cache file, the tokens_file and the ClickHouse tokens (waiting for
// ClickHouse up to ctx), and on a first start, when none of them holds a
// token, bootstraps an admin and an agent token into ClickHouse and the
// files AdminTokenFile and AgentTokenFile of the data dir (0600).
//
// ClickHouse unreachable is not an error when the cache or the tokens_file
// holds tokens (a warning is logged, and Run catches up); it is when no
// token is known at all. With cfg.Disabled New logs a warning and checks
// nothing else. Call Run to keep the tokens fresh and write the audit log.
func New(ctx context.Context, cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Database == "" {
		opts.Database = "drover"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Authenticator{
		cfg: cfg, opts: opts, log: opts.Logger, now: opts.Now,
		db: map[string]dbToken{}, pending: map[string]dbToken{},
	}
	a.audit.init()
	if cfg.Disabled {
		a.log.Warn("auth: AUTHENTICATION IS DISABLED (auth.disabled: true): every request on every listener is accepted without a token, as admin")
		a.view.Store(&view{})
		return a, nil
	}
	if opts.DataDir == "" {
		return nil, errors.New("auth: Options.DataDir is required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: data dir: %w", err)
	}

	cached, err := readCache(a.cachePath())
	if err != nil {
		a.log.Warn("auth: ignoring the token cache", "err", err)
	}
	for n, t := range cached {
		a.db[n] = t
	}
	if cfg.TokensFile != "" {
		if err := a.loadTokensFile(); err != nil {
			return nil, err
		}
	}

	var dbErr error
	if opts.Conn != nil {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fetched, err := a.selectTokens(qctx)
		cancel()
		if err != nil {
			dbErr = err
		} else {
			a.mu.Lock()
			a.applyFetchedLocked(fetched)
			a.mu.Unlock()
		}
	}
	a.mu.Lock()
	a.publishLocked()
	nDB, nFile := len(a.db), len(a.file)
	a.mu.Unlock()

	switch {
	case opts.Conn != nil && dbErr == nil && nDB == 0 && nFile == 0:
		if err := a.bootstrap(ctx); err != nil {
			return nil, fmt.Errorf("auth: bootstrap: %w", err)
		}
	case dbErr != nil && nDB == 0 && nFile == 0:
		return nil, fmt.Errorf("auth: no token is known: ClickHouse cannot be read and there is no token cache or tokens_file: %w", dbErr)
	case dbErr != nil:
		a.log.Warn("auth: ClickHouse cannot be read; authenticating with the cached tokens until it can", "cached", nDB, "tokens_file", nFile, "err", dbErr)
		a.dbFailing.fail(a.now())
	case opts.Conn == nil && nFile == 0:
		return nil, errors.New("auth: no token: no ClickHouse connection and auth.tokens_file lists none")
	}
	if len(a.view.Load().live) == 0 {
		a.log.Warn("auth: every token is revoked; no request that needs a token can succeed")
	}
	return a, nil
}

// Run keeps the tokens fresh (ClickHouse and tokens_file every
// refresh_interval) and writes the audit log, until ctx is cancelled; then
// it writes the audit entries still queued (for up to 5 s) and returns nil.
// Run may be called once; without it, authentication works on the tokens
// New loaded and audit entries are dropped once the queue is full.
func (a *Authenticator) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("auth: Run called more than once")
	}
	var wg sync.WaitGroup
	if !a.cfg.Disabled {
		wg.Go(func() {
			t := time.NewTicker(a.cfg.RefreshInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_ = a.refresh(ctx)
				}
			}
		})
	}
	wg.Go(func() { a.runAudit(ctx) })
	wg.Wait()
	return nil
}

// Reload re-reads the tokens_file and the ClickHouse tokens now (as Run
// does every refresh_interval), e.g. on SIGHUP. On an error the tokens
// known before stay in force; the error says what could not be read.
func (a *Authenticator) Reload(ctx context.Context) error {
	if a.cfg.Disabled {
		return nil
	}
	return a.refresh(ctx)
}

func (a *Authenticator) refresh(ctx context.Context) error {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	var errs []error
	if a.cfg.TokensFile != "" {
		if err := a.reloadTokensFileIfChanged(); err != nil {
			errs = append(errs, err)
		}
	}
	if a.opts.Conn != nil {
		qctx, cancel := context.WithTimeout(ctx, max(a.cfg.RefreshInterval, 5*time.Second))
		fetched, err := a.selectTokens(qctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				if a.dbFailing.fail(a.now()) {
					a.log.Warn("auth: cannot refresh tokens from ClickHouse; using the cached ones", "err", err)
				}
				errs = append(errs, err)
			}
		} else {
			if a.dbFailing.recover() {
				a.log.Info("auth: tokens refreshed from ClickHouse again")
			}
			a.mu.Lock()
			a.applyFetchedLocked(fetched)
			a.publishLocked()
			a.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// applyFetchedLocked makes fetched the ClickHouse tokens, keeping local
// writes that the fetch does not show yet (it began before they were
// stored, or read a replica that had not received them).
func (a *Authenticator) applyFetchedLocked(fetched map[string]dbToken) {
	for name, p := range a.pending {
		if f, ok := fetched[name]; ok && f.RowVersion >= p.RowVersion {
			delete(a.pending, name)
			continue
		}
		fetched[name] = p
	}
	a.db = fetched
}

// publishLocked builds the view from db and file, swaps it in and writes
// the cache file when the ClickHouse tokens changed. A hash revoked in
// ClickHouse stays rejected even if tokens_file lists it.
func (a *Authenticator) publishLocked() {
	v := &view{live: map[[32]byte]Principal{}, revoked: map[[32]byte]string{}}
	cache := make([]dbToken, 0, len(a.db))
	for _, t := range a.db {
		sum, err := parseSum(t.SHA256)
		if err != nil {
			continue
		}
		if t.Revoked {
			v.revoked[sum] = t.Name
		} else {
			v.live[sum] = Principal{Name: t.Name, Role: t.Role}
		}
		v.list = append(v.list, t.Token)
		cache = append(cache, t)
	}
	for _, t := range a.file {
		sum, err := parseSum(t.SHA256)
		if err != nil {
			continue
		}
		if _, revoked := v.revoked[sum]; !revoked {
			v.live[sum] = Principal{Name: t.Name, Role: t.Role}
		}
		v.list = append(v.list, t)
	}
	slices.SortFunc(v.list, func(x, y Token) int {
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return strings.Compare(string(x.Source), string(y.Source))
	})
	a.view.Store(v)

	if a.opts.DataDir == "" {
		return
	}
	slices.SortFunc(cache, func(x, y dbToken) int { return strings.Compare(x.Name, y.Name) })
	data, err := json.Marshal(cache)
	if err != nil || bytes.Equal(data, a.lastCache) {
		return
	}
	out, err := json.MarshalIndent(cacheContent{Written: a.now().UTC(), Tokens: cache}, "", "  ")
	if err == nil {
		err = writeFileAtomic(a.cachePath(), append(out, '\n'))
	}
	if err != nil {
		if a.cacheFail.fail(a.now()) {
			a.log.Warn("auth: cannot write the token cache; authentication while ClickHouse is down will use older tokens", "path", a.cachePath(), "err", err)
		}
		return
	}
	a.cacheFail.recover()
	a.lastCache = data
}

func (a *Authenticator) cachePath() string { return filepath.Join(a.opts.DataDir, CacheFile) }

func (a *Authenticator) loadTokensFile() error {
	st, err := os.Stat(a.cfg.TokensFile)
	if err != nil {
		return fmt.Errorf("auth.tokens_file: %w", err)
	}
	ts, err := readTokensFile(a.cfg.TokensFile)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.file, a.fileStamp = ts, fileStamp{mod: st.ModTime(), size: st.Size()}
	a.mu.Unlock()
	return nil
}

// reloadTokensFileIfChanged re-reads tokens_file when its modification
// time or size changed; a file that cannot be read or decoded leaves the
// tokens it listed before in force.
func (a *Authenticator) reloadTokensFileIfChanged() error {
	st, err := os.Stat(a.cfg.TokensFile)
	if err == nil {
		a.mu.Lock()
		same := a.fileStamp == fileStamp{mod: st.ModTime(), size: st.Size()}
		a.mu.Unlock()
		if same {
			return nil
		}
		var ts []Token
		if ts, err = readTokensFile(a.cfg.TokensFile); err == nil {
			a.mu.Lock()
			a.file, a.fileStamp = ts, fileStamp{mod: st.ModTime(), size: st.Size()}
			a.publishLocked()
			a.mu.Unlock()
			a.fileFailing.recover()
			a.log.Info("auth: tokens_file reloaded", "path", a.cfg.TokensFile, "tokens", len(ts))
			return nil
		}
	} else {
		err = fmt.Errorf("auth.tokens_file: %w", err)
	}
	if a.fileFailing.fail(a.now()) {
		a.log.Error("auth: cannot reload tokens_file; the tokens it listed before stay in force", "err", err)
	}
	return err
}

// Authenticate returns who sent r, from its "Authorization: Bearer" header.
// The error is ErrNoToken, ErrMalformed, ErrUnknownToken or ErrRevoked (for
// which the Principal names the revoked token). With auth disabled it
// returns DisabledPrincipal. It never waits for ClickHouse.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if a.cfg.Disabled {
		return DisabledPrincipal, nil
	}
	vals := r.Header.Values("Authorization")
	if len(vals) > 1 {
		return Principal{}, ErrMalformed
	}
	var h string
	if len(vals) == 1 {
		h = vals[0]
	}
	tok, err := ParseBearer(h)
	if err != nil {
		return Principal{}, err
	}
	return a.check(tok)
}

// AuthenticateToken is Authenticate for a token taken from elsewhere (a
// gRPC header, a file).
func (a *Authenticator) AuthenticateToken(token string) (Principal, error) {
	if a.cfg.Disabled {
		return DisabledPrincipal, nil
	}
	return a.check(token)
}

func (a *Authenticator) check(token string) (Principal, error) {
	if a.opts.JobTokenKey != nil && strings.HasPrefix(token, JobTokenPrefix) {
		return CheckJobToken(a.opts.JobTokenKey, token, a.now())
	}
	// The lookup is by the token's sha256, so its time says nothing useful
	// about the stored hashes.
	sum := sha256.Sum256([]byte(token))
	v := a.view.Load()
	if p, ok := v.live[sum]; ok {
		a.used(p.Name)
		return p, nil
	}
	if name, ok := v.revoked[sum]; ok {
		return Principal{Name: name}, ErrRevoked
	}
	return Principal{}, ErrUnknownToken
}

// used records that the token called name was accepted now.
func (a *Authenticator) used(name string) {
	now := a.now().UnixMilli()
	v, ok := a.lastUsed.Load(name)
	if !ok {
		v, _ = a.lastUsed.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(now)
}

// lastUse returns when this collector last accepted the token called
// name since it started, or nil.
func (a *Authenticator) lastUse(name string) *time.Time {
	v, ok := a.lastUsed.Load(name)
	if !ok {
		return nil
	}
	t := time.UnixMilli(v.(*atomic.Int64).Load()).UTC()
	return &t
}

// List returns every known token, revoked ones too, sorted by name: the
// ClickHouse tokens as of the last refresh (or local change) and the
// tokens_file's. Never the tokens themselves, only their hashes.
func (a *Authenticator) List() []Token {
	return slices.Clone(a.view.Load().list)
}

// Create makes a new token with name and role, stores its hash in
// ClickHouse (so every collector of the cluster accepts it within their
// refresh_interval; this one at once) and returns the token, which is
// shown this once and never stored. by is who asked (a token name). A name
// that any token has or had is ErrExists.
func (a *Authenticator) Create(ctx context.Context, name string, role Role, by string) (string, Token, error) {
	if err := a.canManage(); err != nil {
		return "", Token{}, err
	}
	if err := CheckName(name); err != nil {
		return "", Token{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", Token{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nameKnownLocked(name) {
		return "", Token{}, fmt.Errorf("create token %s: %w", name, ErrExists)
	}
	exists, err := a.nameExists(ctx, name)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token %s: %w", name, err)
	}
	if exists {
		return "", Token{}, fmt.Errorf("create token %s: %w", name, ErrExists)
	}
	tok, t, err := a.newRow(name, role, by)
	if err != nil {
		return "", Token{}, err
	}
	if err := a.insertTokens(ctx, []dbToken{t}); err != nil {
		return "", Token{}, fmt.Errorf("create token %s: %w", name, err)
	}
	a.db[name], a.pending[name] = t, t
	a.publishLocked()
	return tok, t.Token, nil
}

// Revoke revokes the token called name in ClickHouse: it is rejected here at
// once and by every collector of the cluster within its refresh_interval,
// also by those that see ClickHouse only through their cache afterwards.
// Revoking a revoked token changes nothing and is not an error. A token of
// tokens_file is ErrReadOnly, an unknown name ErrNotFound.
func (a *Authenticator) Revoke(ctx context.Context, name, by string) (Token, error) {
	if err := a.canManage(); err != nil {
		return Token{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var rows []row
	q := "SELECT name, sha256, role, created, created_by, revoked, revoked_at, revoked_by, row_version FROM " +
		a.opts.Database + ".tokens FINAL WHERE name = ?"
	if err := a.opts.Conn.Select(ctx, &rows, q, name); err != nil {
		return Token{}, fmt.Errorf("revoke token %s: read %s.tokens: %w", name, a.opts.Database, err)
	}
	var cur dbToken
	switch local, ok := a.db[name]; {
	case len(rows) > 0 && (!ok || rows[0].RowVersion >= local.RowVersion):
		cur = dbToken{Token: rows[0].token(), RowVersion: rows[0].RowVersion}
	case ok: // created here a moment ago; the read did not show it yet
		cur = local
	case slices.ContainsFunc(a.file, func(t Token) bool { return t.Name == name }):
		return Token{}, fmt.Errorf("revoke token %s: %w", name, ErrReadOnly)
	default:
		return Token{}, fmt.Errorf("revoke token %s: %w", name, ErrNotFound)
	}
	if cur.Revoked {
		return cur.Token, nil
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	cur.Revoked, cur.RevokedAt, cur.RevokedBy = true, &now, by
	cur.RowVersion = revokedVersion | uint64(now.UnixMilli())
	if err := a.insertTokens(ctx, []dbToken{cur}); err != nil {
		return Token{}, fmt.Errorf("revoke token %s: %w", name, err)
	}
	a.db[name], a.pending[name] = cur, cur
	a.publishLocked()
	return cur.Token, nil
}

func (a *Authenticator) canManage() error {
	if a.cfg.Disabled {
		return ErrDisabled
	}
	if a.opts.Conn == nil {
		return ErrNoStore
	}
	return nil
}

func (a *Authenticator) nameKnownLocked(name string) bool {
	if _, ok := a.db[name]; ok {
		return true
	}
	return slices.ContainsFunc(a.file, func(t Token) bool { return t.Name == name })
}

func (a *Authenticator) newRow(name string, role Role, by string) (string, dbToken, error) {
	tok, sum, err := NewToken()
	if err != nil {
		return "", dbToken{}, err
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	return tok, dbToken{
		Token:      Token{Name: name, Role: role, SHA256: sum, Created: now, CreatedBy: by, Source: SourceClickHouse},
		RowVersion: uint64(now.UnixMilli()),
	}, nil
}

// bootstrap creates the first admin and agent tokens. Their names carry a
// random suffix (admin-1a2b3c): two collectors that bootstrap the same
// empty database at once each create their own pair, both pairs are valid
// on every collector, and neither set of files is broken by the other (the
// operator may revoke the extra pair). The files are written before the
// rows are stored and removed if storing fails, so a token in ClickHouse is
// never one nobody knows; a crash in between leaves files whose tokens do
// not exist, replaced by the next start's bootstrap.
func (a *Authenticator) bootstrap(ctx context.Context) error {
	var suffix [3]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	by := "bootstrap"
	if a.opts.Node != "" {
		by += " on " + a.opts.Node
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	type made struct {
		file, token string
		row         dbToken
	}
	var all []made
	for _, r := range []struct {
		role Role
		file string
	}{{Admin, AdminTokenFile}, {Agent, AgentTokenFile}} {
		tok, row, err := a.newRow(string(r.role)+"-"+hex.EncodeToString(suffix[:]), r.role, by)
		if err != nil {
			return err
		}
		all = append(all, made{filepath.Join(a.opts.DataDir, r.file), tok, row})
	}
	for _, m := range all {
		if err := writeFileAtomic(m.file, []byte(m.token+"\n")); err != nil {
			for _, m := range all {
				os.Remove(m.file)
			}
			return fmt.Errorf("write %s: %w", m.file, err)
		}
	}
	if err := a.insertTokens(ctx, []dbToken{all[0].row, all[1].row}); err != nil {
		for _, m := range all {
			os.Remove(m.file)
		}
		return err
	}
	for _, m := range all {
		a.db[m.row.Name], a.pending[m.row.Name] = m.row, m.row
	}
	a.publishLocked()
	a.log.Warn("auth: no token existed, so an admin and an agent token were created; keep these files secret",
		"admin_token_file", all[0].file, "admin_token_name", all[0].row.Name,
		"agent_token_file", all[1].file, "agent_token_name", all[1].row.Name)
	for _, m := range all {
		a.Audit(ctx, Entry{Token: "", Action: "token.bootstrap", Target: m.row.Name, Result: ResultOK,
			Detail: "role " + string(m.row.Role) + ", written to " + m.file})
	}
	return nil
}

// failLog limits the logging of a failing dependency: fail reports true on
// the first failure and then at most once a minute; recover reports
// whether it was failing.
type failLog struct {
	mu      sync.Mutex
	failing bool
	logged  time.Time
}

func (f *failLog) fail(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing && now.Sub(f.logged) < time.Minute {
		return false
	}
	f.failing, f.logged = true, now
	return true
}

func (f *failLog) recover() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.failing
	f.failing = false
	return was
}
