package search_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/internal/pgtest"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/search"
	"github.com/mailvault/mailvaultd/searchquery"
)

// queries are searches over the corpus, every operator at least once, with
// the messages each finds, newest first.
var queries = []struct {
	q    string
	want []string
}{
	{"zebrafinch", []string{"reply", "report"}},
	{"aardvarkian", []string{"report"}},
	{"marmoset", []string{"report"}},                        // a bare word in a file name
	{`"zebrafinch quarterly"`, []string{"reply", "report"}}, // a phrase: all its words
	{"from:alice@example.com", []string{"report"}},
	{"from:zanzibarova", []string{"report"}},
	{"from:example.org", []string{"reply"}},
	{"to:dave@example.org", []string{"lunch"}},
	{"to:frank@bcc.test", []string{"reply"}}, // the envelope and the Bcc header
	{"cc:erin@cc.test", []string{"lunch"}},
	{"bcc:frank@bcc.test", []string{"reply"}},
	{"subject:lunch", []string{"lunch"}},
	{"subject:pizza", []string{}},
	{"filename:marmoset-q3.pdf", []string{"report"}},
	{"filename:pdf", []string{"report"}},
	{"rfc822msgid:<m1.quokka@example.com>", []string{"report"}},
	{"list:team.example.com", []string{"report"}},
	{"has:attachment", []string{"report"}},
	{"-has:attachment", []string{"reply", "lunch"}},
	{"after:2026-02-01", []string{"reply", "lunch"}},
	{"before:2026-02-01", []string{"report"}},
	{"newer_than:30d", []string{"reply"}},
	{"older_than:30d", []string{"lunch", "report"}},
	{"larger:5K", []string{"reply"}},
	{"smaller:300", []string{"lunch"}},
	{"pizza OR aardvarkian", []string{"lunch", "report"}},
	{"{pizza aardvarkian}", []string{"lunch", "report"}},
	{"zebrafinch -from:bob@example.org", []string{"report"}},
	{"nosuchwordanywhere", []string{}},
}

func TestListerFindsDeliveredMail(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b.open)
			f.deliverAll(t)
			for _, tc := range queries {
				if got := f.find(t, f.lister, listing.Query{All: true, Q: tc.q}); !slices.Equal(got, tc.want) {
					t.Errorf("%s: found %v, want %v", tc.q, got, tc.want)
				}
			}
			// A listing without a query, and one bounded in time.
			if got := f.find(t, f.lister, listing.Query{All: true}); !slices.Equal(got, []string{"reply", "lunch", "report"}) {
				t.Errorf("listing: %v", got)
			}
			got := f.find(t, f.lister, listing.Query{All: true, Since: corpus[1].at, Until: corpus[2].at})
			if !slices.Equal(got, []string{"lunch"}) {
				t.Errorf("since/until: %v", got)
			}
			// The summary comes back whole from its sealed form.
			page, err := f.lister.List(context.Background(), listing.Query{All: true, Q: "has:attachment"})
			if err != nil {
				t.Fatal(err)
			}
			m := page.Messages[0]
			if m.Header.Subject != "Quarterly zebrafinch report" || m.From != "alice@example.com" || !m.ReceivedAt.Equal(corpus[0].at) ||
				m.Size != int64(len(corpus[0].raw)) || len(m.Parts) == 0 {
				t.Errorf("summary: %+v", m)
			}
		})
	}
}

func TestListerReaderIsolation(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b.open)
			f.deliverAll(t)
			for _, tc := range []struct {
				name      string
				mailboxes []string
				q         string
				want      []string
			}{
				{"recipient", []string{"dave@example.org"}, "", []string{"lunch"}},
				{"case and spelling of the mailbox", []string{"Dave@Example.ORG"}, "", []string{"lunch"}},
				{"sender and recipient", []string{"alice@example.com"}, "", []string{"reply", "report"}},
				{"search stays inside", []string{"dave@example.org"}, "zebrafinch", []string{}},
				{"header-only address is no party", []string{"nobody@example.net"}, "", []string{}},
				{"no mailboxes: nothing", nil, "", []string{}},
				{"two mailboxes, each message once", []string{"bob@example.org", "alice@example.com"}, "", []string{"reply", "report"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got := f.find(t, f.lister, listing.Query{Mailboxes: tc.mailboxes, Q: tc.q})
					if !slices.Equal(got, tc.want) {
						t.Errorf("found %v, want %v", got, tc.want)
					}
				})
			}
		})
	}
}

func TestListerBadQueries(t *testing.T) {
	f := newFixture(t, openSQLite)
	f.deliverAll(t)
	for _, q := range []string{"from:", "has:spaceship", "(unclosed", "larger:lots", `"!!!"`,
		strings.Repeat("a OR ", 300) + "b"} {
		_, err := f.lister.List(context.Background(), listing.Query{All: true, Q: q})
		if !errors.Is(err, listing.ErrBadQuery) {
			t.Errorf("%q: %v, want ErrBadQuery", q, err)
		}
	}
	_, err := f.lister.List(context.Background(), listing.Query{All: true, Cursor: "not-a-cursor"})
	if !errors.Is(err, listing.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestListerPaging(t *testing.T) {
	f := newFixture(t, openSQLite)
	f.deliverAll(t)
	var got []string
	cursor := ""
	for range 5 {
		page, err := f.lister.List(context.Background(), listing.Query{All: true, Limit: 1, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if page.Count != 3 {
			t.Fatalf("count %d, want 3", page.Count)
		}
		for _, m := range page.Messages {
			got = append(got, f.names[m.ID])
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, []string{"reply", "lunch", "report"}) {
		t.Fatalf("pages: %v", got)
	}
}

// TestListerMessageCursor: each listed message's Cursor resumes the listing
// right after it, so that retrieval can end a page early (a response that
// would grow too large) without skipping or repeating a message.
func TestListerMessageCursor(t *testing.T) {
	f := newFixture(t, openSQLite)
	f.deliverAll(t)
	all, err := f.lister.List(context.Background(), listing.Query{All: true, Limit: 10})
	if err != nil || len(all.Messages) != 3 {
		t.Fatalf("list: %d messages, %v", len(all.Messages), err)
	}
	for i, m := range all.Messages {
		if m.Cursor == "" {
			t.Fatalf("message %d has no cursor", i)
		}
		rest, err := f.lister.List(context.Background(), listing.Query{All: true, Limit: 10, Cursor: m.Cursor})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, r := range rest.Messages {
			got = append(got, r.ID)
		}
		for _, r := range all.Messages[i+1:] {
			want = append(want, r.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("after message %d: %v, want %v", i, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	k := blind.NewKey(make([]byte, 32))
	for _, n := range []searchquery.Node{
		nil,
		searchquery.Has{What: "spaceship"},
		searchquery.Term{Op: "from", Value: "!!!"},
		searchquery.Term{Op: "nosuchop", Value: "x"},
		searchquery.And{Nodes: []searchquery.Node{searchquery.Term{Value: "ok"}, searchquery.Term{Op: "subject", Value: "!!"}}},
	} {
		if _, err := search.Compile(n, k); !errors.Is(err, listing.ErrBadQuery) {
			t.Errorf("Compile(%#v): %v, want ErrBadQuery", n, err)
		}
	}
}

// TestCatalogDownMailStillArchived: a catalog that refuses writes never
// fails a delivery; the row waits in the retry queue and appears once the
// catalog is back.
func TestCatalogDownMailStillArchived(t *testing.T) {
	f := newFixture(t, openSQLite)
	f.cat.setDown(true)
	id := f.deliver(t, corpus[1])
	if _, err := f.vault.Head(context.Background(), id); err != nil {
		t.Fatalf("message not archived: %v", err)
	}
	if q, _ := f.indexer.Pending(); q != 1 {
		t.Fatalf("retry queue holds %d rows, want 1", q)
	}
	if n, q := f.metric(t, "mailvaultd_catalog_index_failures_total"), f.metric(t, "mailvaultd_catalog_retry_queue"); n != 1 || q != 1 {
		t.Fatalf("failures counted %v, queue gauge %v; want 1 and 1", n, q)
	}
	if !strings.Contains(f.logs.String(), "not indexed at delivery") {
		t.Fatalf("failure not logged:\n%s", f.logs)
	}
	if err := f.indexer.Retry(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("Retry while down: %v", err)
	}
	if got := f.find(t, f.lister, listing.Query{All: true, Q: "xylophonist"}); len(got) != 0 {
		t.Fatalf("found %v while the catalog was down", got)
	}
	f.cat.setDown(false)
	if err := f.indexer.Retry(context.Background()); err != nil {
		t.Fatal(err)
	}
	if q, _ := f.indexer.Pending(); q != 0 || f.metric(t, "mailvaultd_catalog_retry_queue") != 0 {
		t.Fatalf("retry queue holds %d rows after a retry", q)
	}
	if got := f.find(t, f.lister, listing.Query{All: true, Q: "xylophonist"}); !slices.Equal(got, []string{"lunch"}) {
		t.Fatalf("after the retry: %v", got)
	}
}

func TestRetryQueueBounded(t *testing.T) {
	f := newFixture(t, openSQLite)
	f.indexer = search.NewIndexer(search.IndexerConfig{Catalog: f.cat, Keys: f.ckeys, Fields: blind.AllFields(), RetryQueue: 2})
	f.core.Indexer = f.indexer
	f.cat.setDown(true)
	f.deliverAll(t)
	if q, dropped := f.indexer.Pending(); q != 2 || dropped != 1 {
		t.Fatalf("queue %d, dropped %d; want 2 and 1", q, dropped)
	}
	f.cat.setDown(false)
	if err := f.indexer.Retry(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The dropped one (the oldest) is what verify finds and repairs.
	rep, err := search.Verify(context.Background(), f.vault, f.keys, f.cat, f.ckeys, true, search.RebuildOptions{Fields: blind.AllFields()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Missing, []string{f.ids["report"]}) || !rep.Repaired {
		t.Fatalf("verify: %+v", rep)
	}
	if got := f.find(t, f.lister, listing.Query{All: true}); len(got) != 3 {
		t.Fatalf("after repair: %v", got)
	}
}

func TestRebuildGivesSameResults(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b.open)
			f.deliverAll(t)
			before := map[string][]string{}
			for _, tc := range queries {
				before[tc.q] = f.find(t, f.lister, listing.Query{All: true, Q: tc.q})
			}
			fresh := f.open(t) // the catalog lost: a new empty one
			var last search.Progress
			opts := search.RebuildOptions{Workers: 2, Batch: 2, Fields: blind.AllFields(), Progress: func(p search.Progress) { last = p }}
			st, err := search.Rebuild(context.Background(), f.vault, f.keys, fresh, f.ckeys, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Archived != 3 || st.Indexed != 3 || st.Skipped != 0 || last.Done != 3 || last.Total != 3 {
				t.Fatalf("rebuild: %+v, last progress %+v", st, last)
			}
			l := &search.Lister{Catalog: fresh, Keys: f.ckeys, Now: f.lister.Now}
			for _, tc := range queries {
				if got := f.find(t, l, listing.Query{All: true, Q: tc.q}); !slices.Equal(got, before[tc.q]) {
					t.Errorf("%s: after rebuild %v, before %v", tc.q, got, before[tc.q])
				}
			}
			// Again: nothing to do (resumable, idempotent); forced: all again.
			if st, err = search.Rebuild(context.Background(), f.vault, f.keys, fresh, f.ckeys, opts); err != nil || st.Skipped != 3 || st.Indexed != 0 {
				t.Fatalf("second rebuild: %+v, %v", st, err)
			}
			opts.Force = true
			if st, err = search.Rebuild(context.Background(), f.vault, f.keys, fresh, f.ckeys, opts); err != nil || st.Indexed != 3 {
				t.Fatalf("forced rebuild: %+v, %v", st, err)
			}
		})
	}
}

func TestVerifyDetectsAndRepairs(t *testing.T) {
	f := newFixture(t, openSQLite)
	f.deliverAll(t)
	ctx := context.Background()
	if err := f.cat.Delete(ctx, f.ids["lunch"]); err != nil {
		t.Fatal(err)
	}
	orphan := catalog.Row{ID: "20260101T000000.000000000Z-deadbeefdeadbeef", ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Size: 1, Summary: f.ckeys.Summary.Seal("x", []byte("{}"))}
	if err := f.cat.Put(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	opts := search.RebuildOptions{Fields: blind.AllFields()}
	rep, err := search.Verify(ctx, f.vault, f.keys, f.cat, f.ckeys, false, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !slices.Equal(rep.Missing, []string{f.ids["lunch"]}) || !slices.Equal(rep.Orphans, []string{orphan.ID}) || rep.Repaired {
		t.Fatalf("verify: %+v", rep)
	}
	if rep, err = search.Verify(ctx, f.vault, f.keys, f.cat, f.ckeys, true, opts); err != nil || !rep.Repaired {
		t.Fatalf("repair: %+v, %v", rep, err)
	}
	if rep, err = search.Verify(ctx, f.vault, f.keys, f.cat, f.ckeys, false, opts); err != nil || !rep.OK() {
		t.Fatalf("after repair: %+v, %v", rep, err)
	}
	if got := f.find(t, f.lister, listing.Query{All: true, Q: "xylophonist"}); !slices.Equal(got, []string{"lunch"}) {
		t.Fatalf("repaired row not found: %v", got)
	}
}

// distinctive are words of the corpus that must not be stored in clear.
var distinctive = []string{"zebrafinch", "aardvarkian", "xylophonist", "marmoset", "zanzibarova", "quokka",
	"alice@example.com", "dave@example.org", "Quarterly", "lunch plans"}

func TestNoPlaintextAtRest(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "catalog.db")
		f := newFixture(t, func(t *testing.T) *catalog.Catalog {
			return openCatalog(t, catalog.Config{Backend: catalog.BackendSQLite, Path: path})
		})
		f.deliverAll(t)
		f.cat.Close()
		var blob []byte
		files, _ := filepath.Glob(path + "*")
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			blob = append(blob, b...)
		}
		checkNoPlaintext(t, blob)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.Start(t)
		f := newFixture(t, func(t *testing.T) *catalog.Catalog {
			return openCatalog(t, catalog.Config{Backend: catalog.BackendPostgres, DSN: dsn})
		})
		f.deliverAll(t)
		checkNoPlaintext(t, pgtest.Dump(t, dsn))
	})
}

func checkNoPlaintext(t *testing.T, blob []byte) {
	t.Helper()
	if len(blob) == 0 {
		t.Fatal("nothing to check")
	}
	low := strings.ToLower(string(blob))
	for _, w := range distinctive {
		if strings.Contains(low, strings.ToLower(w)) {
			t.Errorf("%q is stored in clear", w)
		}
	}
}
