package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
)

// stagingTable holds a Loader's postings until Finish. It is a plain heap
// (rowid) table: appends are cheap whatever the token order, where an
// insert into the postings key lands on a random page per posting.
const stagingTable = "postings_load"

// Loader writes a large number of rows (a rebuild, a generated benchmark
// catalog) faster than PutBatch: rows go to messages as PutBatch writes
// them, but their postings are appended to a staging table and moved into
// postings by Finish in one INSERT … SELECT … ORDER BY the postings key, so
// that the key's B-tree is written in order instead of one random page per
// posting.
//
// Until Finish, a loaded row is found by Get, IDs and searches driven by
// no token, but not by its tokens. A load interrupted before Finish leaves
// its staged postings behind; the next Loader (Load + Finish) takes them
// along. A Loader is for a catalog no one else writes meanwhile: a Put or
// Delete of a staged row by another writer leaves that row's staged
// postings to be moved by Finish.
type Loader struct {
	c *Catalog
}

// Load starts a bulk load (creating the staging table if no earlier load
// left one).
func (c *Catalog) Load(ctx context.Context) (*Loader, error) {
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS " + stagingTable + " (token BIGINT NOT NULL, received_at BIGINT NOT NULL, msg BIGINT NOT NULL)",
		// msg only grows within a load, so this index is appended to; it
		// lets a replace within the load drop the old row's postings.
		"CREATE INDEX IF NOT EXISTS " + stagingTable + "_msg ON " + stagingTable + " (msg)",
	} {
		if _, err := c.db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("catalog: load: %w", err)
		}
	}
	return &Loader{c: c}, nil
}

// Put records rows as PutBatch does (idempotent by id; a later row with
// the id of an earlier one replaces it, within the batch and across the
// load), staging their postings.
func (l *Loader) Put(ctx context.Context, rows []Row) error {
	for i := range rows {
		if err := validateRow(&rows[i]); err != nil {
			return fmt.Errorf("catalog: load: %w", err)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := l.c.putBatch(ctx, rows, true); err != nil {
		return fmt.Errorf("catalog: load: %w", err)
	}
	return nil
}

// Finish moves the staged postings into postings, sorted by the postings
// key, and drops the staging table, in one transaction.
func (l *Loader) Finish(ctx context.Context) error {
	c := l.c
	unlock := c.lockWrites()
	defer unlock()
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("catalog: load: finish: %w", err)
	}
	defer conn.Close()
	if c.dialect.name == BackendSQLite {
		restore, err := sqliteSortPragmas(ctx, conn)
		if err != nil {
			return fmt.Errorf("catalog: load: finish: %w", err)
		}
		defer restore()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: load: finish: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		"INSERT INTO postings (token, received_at, msg) SELECT token, received_at, msg FROM " + stagingTable +
			" ORDER BY " + c.dialect.postingsKey,
		"DROP TABLE " + stagingTable,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("catalog: load: finish: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: load: finish: %w", err)
	}
	if c.dialect.name == BackendPostgres {
		// The planner's statistics predate the load until autovacuum
		// comes round; without them it misjudges the postings' sizes
		// (two words + a date range: 48 ms p50 at 100,000 rows).
		if _, err := conn.ExecContext(ctx, "ANALYZE messages, postings"); err != nil {
			return fmt.Errorf("catalog: load: finish: analyze: %w", err)
		}
	}
	return nil
}

// sqliteSortPragmas sets conn up for one large sort: the sorter spills to
// temporary files (the connection's temp_store MEMORY would hold the whole
// staging table in RAM), a larger cache for fewer merge passes, and a
// helper thread; restore puts the connection's own settings back (it goes
// back to the pool).
func sqliteSortPragmas(ctx context.Context, conn *sql.Conn) (restore func(), err error) {
	set := func(ctx context.Context, ps ...string) error {
		for _, p := range ps {
			if _, err := conn.ExecContext(ctx, "PRAGMA "+p); err != nil {
				return err
			}
		}
		return nil
	}
	restore = func() {
		// A connection left with other settings is not worth failing a
		// finished load over; it is discarded instead.
		// (A cancelled load still restores them.)
		if set(context.Background(), "temp_store = MEMORY", "cache_size = -32768", "threads = 0") != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	if err := set(ctx, "temp_store = FILE", "cache_size = -524288", "threads = 2"); err != nil {
		restore()
		return nil, err
	}
	return restore, nil
}
