package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/catalog/catalogtest"
	"github.com/mailvault/mailvaultd/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func open(t *testing.T, cfg catalog.Config) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sqliteConfig(t *testing.T) catalog.Config {
	return catalog.Config{Backend: catalog.BackendSQLite, Path: filepath.Join(t.TempDir(), "catalog.db")}
}

func postgresConfig(t *testing.T) catalog.Config {
	return catalog.Config{Backend: catalog.BackendPostgres, DSN: pgtest.Start(t)}
}

var backends = []struct {
	name   string
	config func(t *testing.T) catalog.Config
}{
	{"SQLite", sqliteConfig},
	{"PostgreSQL", postgresConfig},
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			catalogtest.Run(t, func(t *testing.T) *catalog.Catalog { return open(t, b.config(t)) })
		})
	}
}

// TestReopen: a second open finds the schema current and the rows kept;
// concurrent opens of a new catalog all succeed (one migrates, the others
// wait and find it done).
func TestReopen(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					c, err := catalog.Open(context.Background(), cfg)
					if err != nil {
						errs <- err
						return
					}
					c.Close()
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("concurrent open: %v", err)
			}
			c := open(t, cfg)
			row := catalog.Row{ID: "m1", ReceivedAt: time.Unix(1700000000, 5), Size: 3, Tokens: []blind.Token{9}}
			if err := c.Put(context.Background(), row); err != nil {
				t.Fatal(err)
			}
			c.Close()
			c = open(t, cfg)
			if got, err := c.Get(context.Background(), "m1"); err != nil || !got.ReceivedAt.Equal(row.ReceivedAt) {
				t.Errorf("after reopen: %+v, %v", got, err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]catalog.Config{
		"unknown backend":      {Backend: "mysql", Path: "x"},
		"sqlite without path":  {Backend: catalog.BackendSQLite},
		"postgres without dsn": {Backend: catalog.BackendPostgres},
		"sqlite in a missing directory": {Backend: catalog.BackendSQLite,
			Path: filepath.Join(t.TempDir(), "no", "such", "catalog.db")},
	} {
		if c, err := catalog.Open(ctx, cfg); err == nil {
			c.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

// TestSearchTimeout: a search that runs past the catalog's search timeout is
// ErrTooExpensive; one whose caller gave up is the caller's error.
func TestSearchTimeout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.SearchTimeout = time.Nanosecond // expired before the first statement
			c := open(t, cfg)
			ctx := context.Background()
			if err := c.Put(ctx, catalog.Row{ID: "m1", ReceivedAt: time.Unix(1, 0), Tokens: []blind.Token{1}}); err != nil {
				t.Fatal(err)
			}
			_, err := c.Search(ctx, catalog.Search{Where: catalog.HasToken(1)})
			if !errors.Is(err, catalog.ErrTooExpensive) {
				t.Errorf("timed out search: %v, want ErrTooExpensive", err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err = c.Search(cctx, catalog.Search{Where: catalog.HasToken(1)})
			if err == nil || errors.Is(err, catalog.ErrTooExpensive) {
				t.Errorf("cancelled search: %v, want the cancellation", err)
			}
		})
	}
}

// TestNoPlaintextAtRest puts rows whose summaries are sealed and finds none
// of their plaintext in the SQLite files (main and WAL) or in a pg_dump.
func TestNoPlaintextAtRest(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a}, 32)
	box, err := catalog.NewSummaryBox(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Clear()
	var plains []string
	var rows []catalog.Row
	for i := range 50 {
		id := fmt.Sprintf("m%03d", i)
		words := []string{
			fmt.Sprintf("Subject: Merger plan zanzibar-%03d", i),
			fmt.Sprintf("From: Alice Quuxley <alice.quuxley%03d@example.org>", i),
			fmt.Sprintf("Attachment: secret-forecast-%03d.xlsx", i),
		}
		plains = append(plains, words...)
		summary := []byte(fmt.Sprintf("%s\n%s\n%s\n", words[0], words[1], words[2]))
		rows = append(rows, catalog.Row{ID: id, ReceivedAt: time.Unix(1700000000+int64(i), 0), Size: 1000,
			Tokens: []blind.Token{blind.Token(i), 77}, Summary: box.Seal(id, summary)})
	}
	check := func(t *testing.T, where string, data []byte) {
		t.Helper()
		if len(data) == 0 {
			t.Fatalf("%s: nothing to search", where)
		}
		for _, p := range append(plains, "zanzibar", "Quuxley", "forecast") {
			if bytes.Contains(data, []byte(p)) {
				t.Errorf("%s holds plaintext %q", where, p)
			}
		}
	}
	roundTrip := func(t *testing.T, c *catalog.Catalog) {
		t.Helper()
		res, err := c.Search(context.Background(), catalog.Search{Where: catalog.HasToken(77), Limit: 1})
		if err != nil || len(res.Rows) != 1 {
			t.Fatalf("search: %+v, %v", res, err)
		}
		r := res.Rows[0]
		if plain, err := box.Open(r.ID, r.Summary); err != nil || !bytes.Contains(plain, []byte("zanzibar")) {
			t.Errorf("summary of %s does not open: %q, %v", r.ID, plain, err)
		}
	}

	t.Run("SQLite", func(t *testing.T) {
		cfg := sqliteConfig(t)
		c := open(t, cfg)
		if err := c.PutBatch(context.Background(), rows); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
		// Before close, the rows are in the WAL; after, in the main file.
		wal, err := os.ReadFile(cfg.Path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		check(t, "the WAL", wal)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := os.ReadFile(cfg.Path)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "the database file", db)
		// The check can fail: the summaries' ciphertext is there.
		if !bytes.Contains(db, rows[0].Summary) {
			t.Error("the database file does not hold the sealed summary; the grep proves nothing")
		}
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		cfg := postgresConfig(t)
		c := open(t, cfg)
		if err := c.PutBatch(context.Background(), rows); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
		dump := pgtest.Dump(t, cfg.DSN)
		check(t, "pg_dump", dump)
		if !bytes.Contains(dump, []byte("m049")) {
			t.Error("pg_dump lacks the rows; the grep proves nothing")
		}
	})
}
