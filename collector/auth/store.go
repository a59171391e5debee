package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// revokedVersion is the top bit of row_version: a revoke's row_version is
// revokedVersion | its time in ms, a create's is its time in ms, so the
// revoke of a name is always the row ReplacingMergeTree keeps.
const revokedVersion = uint64(1) << 63

// CacheFile is the name, in the data dir, of the copy of the ClickHouse
// tokens (hashes only) that lets authentication work while ClickHouse is
// down, across a restart too.
const CacheFile = "token-hashes.json"

// row is a row of the tokens table.
type row struct {
	Name       string     `ch:"name"`
	SHA256     string     `ch:"sha256"`
	Role       string     `ch:"role"`
	Created    time.Time  `ch:"created"`
	CreatedBy  string     `ch:"created_by"`
	Revoked    uint8      `ch:"revoked"`
	RevokedAt  *time.Time `ch:"revoked_at"`
	RevokedBy  string     `ch:"revoked_by"`
	RowVersion uint64     `ch:"row_version"`
}

func (r row) token() Token {
	t := Token{
		Name: r.Name, Role: Role(r.Role), SHA256: r.SHA256,
		Created: r.Created.UTC(), CreatedBy: r.CreatedBy,
		Revoked: r.Revoked != 0, RevokedBy: r.RevokedBy, Source: SourceClickHouse,
	}
	if r.RevokedAt != nil {
		at := r.RevokedAt.UTC()
		t.RevokedAt = &at
	}
	return t
}

// dbToken is a token as read from ClickHouse (or the cache), with the
// row_version that orders it against other rows of its name.
type dbToken struct {
	Token
	RowVersion uint64 `json:"row_version"`
}

// selectTokens reads every token row (revoked ones too) from ClickHouse.
func (a *Authenticator) selectTokens(ctx context.Context) (map[string]dbToken, error) {
	var rows []row
	q := "SELECT name, sha256, role, created, created_by, revoked, revoked_at, revoked_by, row_version FROM " +
		a.opts.Database + ".tokens FINAL"
	if err := a.opts.Conn.Select(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("read %s.tokens: %w", a.opts.Database, err)
	}
	out := make(map[string]dbToken, len(rows))
	for _, r := range rows {
		if _, err := ParseRole(r.Role); err != nil {
			a.log.Warn("auth: ignoring a token with an unknown role in ClickHouse", "name", r.Name, "role", r.Role)
			continue
		}
		if _, err := parseSum(r.SHA256); err != nil {
			a.log.Warn("auth: ignoring a token with a malformed sha256 in ClickHouse", "name", r.Name)
			continue
		}
		out[r.Name] = dbToken{Token: r.token(), RowVersion: r.RowVersion}
	}
	return out, nil
}

// nameExists reports whether ClickHouse has any row for name.
func (a *Authenticator) nameExists(ctx context.Context, name string) (bool, error) {
	var n uint64
	q := "SELECT count() FROM " + a.opts.Database + ".tokens WHERE name = ?"
	if err := a.opts.Conn.QueryRow(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("read %s.tokens: %w", a.opts.Database, err)
	}
	return n > 0, nil
}

// insertTokens writes rows and returns once ClickHouse stored them (on a
// cluster, once the Distributed table forwarded them to their shard).
func (a *Authenticator) insertTokens(ctx context.Context, ts []dbToken) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"distributed_foreground_insert": 1}))
	b, err := a.opts.Conn.PrepareBatch(ctx, "INSERT INTO "+a.opts.Database+
		".tokens (name, sha256, role, created, created_by, revoked, revoked_at, revoked_by, row_version)")
	if err != nil {
		return fmt.Errorf("insert into %s.tokens: %w", a.opts.Database, err)
	}
	defer b.Close()
	for _, t := range ts {
		var revoked uint8
		if t.Revoked {
			revoked = 1
		}
		if err := b.Append(t.Name, t.SHA256, string(t.Role), t.Created, t.CreatedBy, revoked, t.RevokedAt, t.RevokedBy, t.RowVersion); err != nil {
			return fmt.Errorf("insert into %s.tokens: %w", a.opts.Database, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s.tokens: %w", a.opts.Database, err)
	}
	return nil
}

// cacheContent is the cache file's JSON.
type cacheContent struct {
	// Written is when the cache was last written (for operators).
	Written time.Time `json:"written"`
	Tokens  []dbToken `json:"tokens"`
}

// readCache loads the cache file; a missing file is an empty cache.
func readCache(path string) (map[string]dbToken, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token cache: %w", err)
	}
	var c cacheContent
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("read token cache %s: %w", path, err)
	}
	out := make(map[string]dbToken, len(c.Tokens))
	for i, t := range c.Tokens {
		if _, err := ParseRole(string(t.Role)); err != nil {
			return nil, fmt.Errorf("read token cache %s: tokens[%d]: %w", path, i, err)
		}
		if _, err := parseSum(t.SHA256); err != nil {
			return nil, fmt.Errorf("read token cache %s: tokens[%d]: %w", path, i, err)
		}
		t.Source = SourceClickHouse
		out[t.Name] = t
	}
	return out, nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary
// file in the same directory and a rename, so a reader (or a crash) never
// sees half a file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
