package catalog

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migrations holds the schema, one directory per backend, one numbered
// plain-SQL file per step (0001_init.sql, 0002_….sql). They are the only
// place that knows the schema.
//
//go:embed migrations
var migrations embed.FS

// migrationLock is the PostgreSQL advisory lock key that serialises
// migrations when several instances open one catalog at once
// ("mvcatalg" as a big-endian int64).
const migrationLock int64 = 0x6d76636174616c67

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(backend string) ([]migration, error) {
	dir := path.Join("migrations", backend)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(migrations, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_version, all in
// one transaction, so that a catalog is either at its old version or at the
// new one. Concurrent opens are safe: on SQLite the transaction begins
// IMMEDIATE (one writer), on PostgreSQL it first takes an advisory
// transaction lock, so the second opener waits and then finds the schema
// current.
func (c *Catalog) migrate(ctx context.Context) error {
	ms, err := loadMigrations(c.dialect.name)
	if err != nil {
		return fmt.Errorf("catalog: migrate: %w", err)
	}
	unlock := c.lockWrites()
	defer unlock()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: migrate: %w", err)
	}
	defer tx.Rollback()
	if c.dialect.name == BackendPostgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("catalog: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer PRIMARY KEY,
		name       text    NOT NULL
	)`); err != nil {
		return fmt.Errorf("catalog: migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&current); err != nil {
		return fmt.Errorf("catalog: migrate: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("catalog: migrate: the database is at schema version %d, this build knows %d", current, len(ms))
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("catalog: migrate %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, c.dialect.rebind("INSERT INTO schema_version (version, name) VALUES (?, ?)"), m.version, m.name); err != nil {
			return fmt.Errorf("catalog: migrate %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: migrate: %w", err)
	}
	return nil
}
