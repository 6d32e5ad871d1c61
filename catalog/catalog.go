package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Backends.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Errors a caller classifies.
var (
	// ErrNotFound: no row has the id.
	ErrNotFound = errors.New("catalog: not found")
	// ErrTooExpensive: the search exceeds a work cap (too many Expr leaves
	// or parties, too deep, or it ran past the search timeout). The API
	// answers it with 400.
	ErrTooExpensive = errors.New("catalog: search too expensive")
	// ErrBadCursor: the cursor is not one this catalog issued. The API
	// answers it with 400.
	ErrBadCursor = errors.New("catalog: invalid cursor")
	// ErrInvalidRow: Put was given a row it cannot record.
	ErrInvalidRow = errors.New("catalog: invalid row")
)

// The work caps of one search.
const (
	DefaultLimit         = 50
	MaxLimit             = 1000
	CountCap             = 1000 // Result.Count counts up to this
	MaxLeaves            = 256  // HasToken, HasFlags, Received and SizeRange nodes in one Expr
	MaxDepth             = 32   // nesting of AllOf, AnyOf and Not
	MaxParties           = 256
	DefaultSearchTimeout = 5 * time.Second
	maxIDLen             = 255
)

// Config says which database holds the catalog.
type Config struct {
	Backend string // BackendSQLite (default when empty) or BackendPostgres
	Path    string // SQLite: the database file (created if missing)
	DSN     string // PostgreSQL: a pgx connection string
	// SearchTimeout bounds one Search (its page and its count); past it the
	// search fails with ErrTooExpensive. Zero means DefaultSearchTimeout.
	SearchTimeout time.Duration
}

// Catalog is an open catalog database. It is safe for concurrent use.
type Catalog struct {
	db      *sql.DB
	dialect dialect
	timeout time.Duration
	// writeMu serialises writers on SQLite: the database has one writer at
	// a time anyway, and queueing in Go instead of in busy_timeout retries
	// keeps write latency flat while readers go on through WAL. PostgreSQL
	// writers run concurrently (writeMu is not taken).
	writeMu sync.Mutex
}

// dialect is what differs between the backends; the SQL is otherwise one.
type dialect struct {
	name string
	// rebind turns the ?-placeholders the package writes into the
	// backend's own.
	rebind func(query string) string
	// tokenSet is a FROM-clause subquery yielding one column t from a
	// single bound parameter that holds a token list (tokenArg makes it).
	tokenSet string
	tokenArg func([]int64) any
	// bytes is the database's size on disk, if cheap.
	bytes string
	// postingsKey is the postings primary key's order, for a Loader's
	// ORDER BY (an insert in key order touches each page once).
	postingsKey string
}

var sqliteDialect = dialect{
	name:     BackendSQLite,
	rebind:   func(q string) string { return q },
	tokenSet: "(SELECT value AS t FROM json_each(?))",
	tokenArg: func(ts []int64) any {
		var b strings.Builder
		b.Grow(len(ts)*21 + 2)
		b.WriteByte('[')
		for i, t := range ts {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, t)
		}
		b.WriteByte(']')
		return b.String()
	},
	// Free pages (a dropped Loader staging table leaves many) are not
	// the catalog's size.
	bytes:       "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
	postingsKey: "token, received_at DESC, msg",
}

var postgresDialect = dialect{
	name:        BackendPostgres,
	rebind:      rebindDollar,
	tokenSet:    "(SELECT unnest(CAST(? AS bigint[])) AS t)",
	tokenArg:    func(ts []int64) any { return ts },
	bytes:       "SELECT pg_total_relation_size('messages') + pg_total_relation_size('postings')",
	postingsKey: "token, received_at, msg",
}

// rebindDollar numbers ?-placeholders as $1, $2, … The package's SQL has
// no string literal or operator containing '?'.
func rebindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Open opens (creating if needed) the catalog the config names and brings
// its schema up to date.
func Open(ctx context.Context, cfg Config) (*Catalog, error) {
	c := &Catalog{timeout: cfg.SearchTimeout}
	if c.timeout <= 0 {
		c.timeout = DefaultSearchTimeout
	}
	var err error
	switch cfg.Backend {
	case "", BackendSQLite:
		if cfg.Path == "" {
			return nil, errors.New("catalog: open: sqlite needs a path")
		}
		c.dialect = sqliteDialect
		c.db, err = sql.Open("sqlite", sqliteDSN(cfg.Path))
	case BackendPostgres:
		if cfg.DSN == "" {
			return nil, errors.New("catalog: open: postgres needs a dsn")
		}
		c.dialect = postgresDialect
		c.db, err = sql.Open("pgx", cfg.DSN)
	default:
		return nil, fmt.Errorf("catalog: open: unknown backend %q", cfg.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", cfg.Backend, err)
	}
	if c.dialect.name == BackendSQLite {
		// Readers are concurrent under WAL; connections are cheap but each
		// holds its own page cache.
		c.db.SetMaxOpenConns(8)
		c.db.SetMaxIdleConns(8)
	} else {
		c.db.SetMaxOpenConns(16)
		c.db.SetMaxIdleConns(16)
	}
	if err := c.migrate(ctx); err != nil {
		c.db.Close()
		return nil, err
	}
	return c, nil
}

// sqliteDSN sets, on every connection: WAL (readers never block the
// writer), a busy timeout (another process, e.g. `catalog rebuild` beside
// the daemon, may hold the write lock), synchronous=NORMAL (durable at
// checkpoints; the archive, not the catalog, is the source of truth, and a
// lost tail is refilled by rebuild), foreign keys, temporary storage in
// memory, a page cache of its own, and BEGIN IMMEDIATE for
// transactions so that two writers never deadlock upgrading a read lock.
func sqliteDSN(path string) string {
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)",
		"busy_timeout(10000)",
		"synchronous(NORMAL)",
		"foreign_keys(1)",
		"cache_size(-32768)", // 32 MiB per connection
		// A multi-row INSERT keeps a statement journal; in a temp file it
		// cost half of a bulk write's time in write syscalls.
		"temp_store(MEMORY)",
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Close closes the database.
func (c *Catalog) Close() error {
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("catalog: close: %w", err)
	}
	return nil
}

// Backend names the backend (BackendSQLite or BackendPostgres).
func (c *Catalog) Backend() string { return c.dialect.name }

// Ping checks that the database answers a query (for /readyz).
func (c *Catalog) Ping(ctx context.Context) error {
	var one int
	if err := c.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("catalog: ping: %w", err)
	}
	return nil
}

// Stats is the catalog's size.
type Stats struct {
	Rows  int64 // messages recorded
	Bytes int64 // the database's size on disk (SQLite: the main file without its WAL; PostgreSQL: the two tables with their indexes)
}

// Stats counts the rows and measures the database.
func (c *Catalog) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	if err := c.db.QueryRowContext(ctx, "SELECT count(*) FROM messages").Scan(&s.Rows); err != nil {
		return Stats{}, fmt.Errorf("catalog: stats: %w", err)
	}
	if err := c.db.QueryRowContext(ctx, c.dialect.bytes).Scan(&s.Bytes); err != nil {
		return Stats{}, fmt.Errorf("catalog: stats: %w", err)
	}
	return s, nil
}

// lockWrites takes the SQLite writer lock; it is a no-op on PostgreSQL.
func (c *Catalog) lockWrites() func() {
	if c.dialect.name != BackendSQLite {
		return func() {}
	}
	c.writeMu.Lock()
	return c.writeMu.Unlock
}
