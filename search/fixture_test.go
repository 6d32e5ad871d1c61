package search_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/internal/pgtest"
	"github.com/mailvault/mailvaultd/internal/testkit"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/search"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// corpusMessage is one message of the test corpus, with words found
// nowhere else so that a leak of any of them is visible.
type corpusMessage struct {
	name string
	env  ingest.Envelope
	at   time.Time
	raw  string
}

var corpus = []corpusMessage{
	{"report", ingest.Envelope{From: "alice@example.com", To: []string{"bob@example.org"}},
		time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC),
		"From: Alice Zanzibarova <alice@example.com>\r\nTo: Bob <bob@example.org>\r\n" +
			"Subject: Quarterly zebrafinch report\r\nMessage-ID: <m1.quokka@example.com>\r\n" +
			"List-Id: Team list <team.example.com>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
			"--b1\r\nContent-Type: text/plain\r\n\r\nthe aardvarkian budget is attached\r\n" +
			"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"marmoset-q3.pdf\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"},
	{"lunch", ingest.Envelope{From: "carol@other.test", To: []string{"dave@example.org", "erin@cc.test"}},
		time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC),
		"From: carol@other.test\r\nTo: dave@example.org\r\nCc: erin@cc.test\r\nSubject: lunch plans\r\n" +
			"Message-ID: <m2@other.test>\r\n\r\npizza xylophonist tomorrow\r\n"},
	{"reply", ingest.Envelope{From: "bob@example.org", To: []string{"alice@example.com", "frank@bcc.test"}},
		time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC),
		"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nBcc: frank@bcc.test\r\n" +
			"Subject: Re: Quarterly zebrafinch report\r\nMessage-ID: <m3@example.org>\r\n\r\n" +
			strings.Repeat("numbers look fine, thanks\r\n", 400)},
}

// testNow is "now" for newer_than: and older_than:.
var testNow = time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)

// flakyCatalog is a real catalog whose writes fail while down is set.
type flakyCatalog struct {
	*catalog.Catalog
	mu   sync.Mutex
	down bool
}

var errDown = errors.New("injected: catalog down")

func (f *flakyCatalog) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }
func (f *flakyCatalog) isDown() bool   { f.mu.Lock(); defer f.mu.Unlock(); return f.down }

func (f *flakyCatalog) Put(ctx context.Context, r catalog.Row) error {
	if f.isDown() {
		return errDown
	}
	return f.Catalog.Put(ctx, r)
}

func (f *flakyCatalog) PutBatch(ctx context.Context, rs []catalog.Row) error {
	if f.isDown() {
		return errDown
	}
	return f.Catalog.PutBatch(ctx, rs)
}

// fixture is an archive on disk, its keys, a catalog and a delivery core
// that indexes into it.
type fixture struct {
	vault   *archive.Vault
	keys    sealer.KeyProvider
	secret  []byte
	ckeys   search.Keys
	cat     *flakyCatalog
	indexer *search.Indexer
	core    *ingest.Core
	lister  *search.Lister
	ids     map[string]string // corpus name -> archive id
	names   map[string]string // archive id -> corpus name
	logs    *bytes.Buffer
	open    func(t *testing.T) *catalog.Catalog
	metrics *prometheus.Registry
}

type opener func(t *testing.T) *catalog.Catalog

func openSQLite(t *testing.T) *catalog.Catalog {
	return openCatalog(t, catalog.Config{Backend: catalog.BackendSQLite, Path: filepath.Join(t.TempDir(), "catalog.db")})
}

func openPostgres(t *testing.T) *catalog.Catalog {
	return openCatalog(t, catalog.Config{Backend: catalog.BackendPostgres, DSN: pgtest.Start(t)})
}

func openCatalog(t *testing.T, cfg catalog.Config) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var backends = []struct {
	name string
	open opener
}{{"SQLite", openSQLite}, {"PostgreSQL", openPostgres}}

func newFixture(t *testing.T, open opener) *fixture {
	t.Helper()
	dir := t.TempDir()
	kr, fs := testkit.LocalArchive(t, dir)
	f := &fixture{keys: kr, secret: kr.IndexKey(), logs: &bytes.Buffer{}, open: open,
		ids: map[string]string{}, names: map[string]string{}}
	f.vault = archive.NewVault(fs, f.secret)
	var err error
	if f.ckeys, err = search.NewKeys(f.secret); err != nil {
		t.Fatal(err)
	}
	f.cat = &flakyCatalog{Catalog: open(t)}
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: f.logs}, nil))
	f.metrics = prometheus.NewRegistry()
	f.indexer = search.NewIndexer(search.IndexerConfig{Catalog: f.cat, Keys: f.ckeys, Fields: blind.AllFields(), Logger: logger,
		Metrics: f.metrics})
	f.core = &ingest.Core{Vault: f.vault, Keys: kr, Logger: logger, Indexer: f.indexer}
	f.lister = &search.Lister{Catalog: f.cat, Keys: f.ckeys, Logger: logger, Now: func() time.Time { return testNow }}
	return f
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (f *fixture) deliver(t *testing.T, m corpusMessage) string {
	t.Helper()
	at := m.at
	f.core.Now = func() time.Time { return at }
	res, err := f.core.Deliver(context.Background(), m.env, strings.NewReader(m.raw), nil)
	if err != nil {
		t.Fatalf("deliver %s: %v", m.name, err)
	}
	f.ids[m.name], f.names[res.ID] = res.ID, m.name
	return res.ID
}

func (f *fixture) deliverAll(t *testing.T) {
	t.Helper()
	for _, m := range corpus {
		f.deliver(t, m)
	}
}

// names lists the corpus names a query finds, in page order.
func (f *fixture) find(t *testing.T, l *search.Lister, q listing.Query) []string {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 100
	}
	page, err := l.List(context.Background(), q)
	if err != nil {
		t.Fatalf("List(%+v): %v", q, err)
	}
	out := []string{}
	for _, m := range page.Messages {
		out = append(out, f.names[m.ID])
	}
	if page.Count != len(page.Messages) || page.CountCapped {
		t.Fatalf("List(%+v): count %d (capped %v) for %d messages", q, page.Count, page.CountCapped, len(page.Messages))
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// metric returns the value of the counter or gauge called name.
func (f *fixture) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := f.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
