package catalog_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/catalog/catalogtest"
	"github.com/mailvault/mailvaultd/internal/pgtest"
)

// benchRows is the generated catalog's size: MAILVAULTD_CATALOG_BENCH_ROWS,
// default 20,000. The figure is 1,000,000 rows (generated through a
// Loader; see docs/BENCHMARKS.md for its time).
func benchRows(b *testing.B) int {
	n := 20_000
	if s := os.Getenv("MAILVAULTD_CATALOG_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("MAILVAULTD_CATALOG_BENCH_ROWS=%q", s)
		}
	}
	return n
}

// benchCatalog opens the catalog to search: on SQLite, the file
// MAILVAULTD_CATALOG_BENCH_DB if set (generated there once, reused while it
// has the rows), else a temporary one; MAILVAULTD_CATALOG_BENCH_BACKEND=postgres
// generates into a pgtest database.
func benchCatalog(b *testing.B) (*catalog.Catalog, catalogtest.Corpus) {
	ctx := context.Background()
	n := benchRows(b)
	var cfg catalog.Config
	switch os.Getenv("MAILVAULTD_CATALOG_BENCH_BACKEND") {
	case "", catalog.BackendSQLite:
		cfg = catalog.Config{Backend: catalog.BackendSQLite, Path: os.Getenv("MAILVAULTD_CATALOG_BENCH_DB")}
		if cfg.Path == "" {
			cfg.Path = filepath.Join(b.TempDir(), "catalog.db")
		}
	case catalog.BackendPostgres:
		cfg = catalog.Config{Backend: catalog.BackendPostgres, DSN: pgtest.Start(b)}
	default:
		b.Fatal("MAILVAULTD_CATALOG_BENCH_BACKEND: sqlite or postgres")
	}
	c, err := catalog.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	corpus := catalogtest.Corpus{Seed: 1, N: n}
	st, err := c.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if st.Rows != int64(n) {
		start := time.Now()
		if corpus, err = catalogtest.Generate(ctx, c, n, 1); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d rows in %v", n, time.Since(start).Round(time.Millisecond))
		if st, err = c.Stats(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%s: %d rows, %d bytes, %d bytes per message", c.Backend(), st.Rows, st.Bytes, st.Bytes/max(st.Rows, 1))
	return c, corpus
}

// BenchmarkSearch measures one page (50 rows, with its count) of the
// issue's four query shapes over a generated catalog and reports p50 and
// p99 besides the mean. Queries vary per iteration: words of ranks drawn
// from the frequent-to-rare middle of the vocabulary, senders and readers
// among the mailboxes.
func BenchmarkSearch(b *testing.B) {
	c, corpus := benchCatalog(b)
	r := rand.New(rand.NewPCG(7, 7))
	rank := func() int { return 10 + r.IntN(2000) }
	box := func() int { return r.IntN(catalogtest.GenMailboxes / 10) }
	end := corpus.End()
	shapes := []struct {
		name string
		make func() catalog.Search
	}{
		{"Word", func() catalog.Search {
			return catalog.Search{Where: catalog.HasToken(corpus.BodyWord(rank()))}
		}},
		{"FromWord", func() catalog.Search {
			return catalog.Search{Where: catalog.AllOf{catalog.HasToken(corpus.From(box())), catalog.HasToken(corpus.BodyWord(rank()))}}
		}},
		{"TwoWordsDateRange", func() catalog.Search {
			from := end.Add(-time.Duration(1+r.IntN(80)) * 24 * time.Hour)
			return catalog.Search{Where: catalog.AllOf{
				catalog.HasToken(corpus.BodyWord(rank())), catalog.HasToken(corpus.BodyWord(rank())),
				catalog.Received{After: from, Before: from.Add(10 * 24 * time.Hour)},
			}}
		}},
		{"ReaderPage", func() catalog.Search {
			return catalog.Search{Parties: []blind.Token{corpus.Party(box()), corpus.Party(box())}}
		}},
	}
	for _, shape := range shapes {
		b.Run(shape.name, func(b *testing.B) {
			ctx := context.Background()
			queries := make([]catalog.Search, 256)
			for i := range queries {
				queries[i] = shape.make()
				queries[i].Limit = 50
			}
			var lat []time.Duration
			hits := 0
			i := 0
			for b.Loop() {
				start := time.Now()
				res, err := c.Search(ctx, queries[i%len(queries)])
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				hits += len(res.Rows)
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(hits)/float64(len(lat)), "rows/op")
		})
	}
}
