package retrieval

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/listing"
)

// searchLister stands in for the catalog's Lister (package search): it
// records every Query and answers a search by listing everything the inner
// lister lists, with a count. q "bad" is malformed; q "nosearch" is refused
// as archivelist refuses every search.
type searchLister struct {
	inner Lister
	mu    sync.Mutex
	seen  []listing.Query
}

func (l *searchLister) List(ctx context.Context, q listing.Query) (listing.Page, error) {
	l.mu.Lock()
	l.seen = append(l.seen, q)
	l.mu.Unlock()
	switch q.Q {
	case "bad":
		return listing.Page{}, fmt.Errorf("%w: unexpected end of query at 3", listing.ErrBadQuery)
	case "nosearch":
		return listing.Page{}, listing.ErrNoSearch
	}
	q.Q = ""
	page, err := l.inner.List(ctx, q)
	if err == nil {
		page.Count, page.CountCapped = 41, true
	}
	return page, err
}

func (l *searchLister) queries() []listing.Query {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]listing.Query(nil), l.seen...)
}

func newSearchFixture(t *testing.T) (*fixture, *searchLister) {
	var sl *searchLister
	f := newFixtureWith(t, func(o *Options) {
		sl = &searchLister{inner: o.Lister}
		o.Lister = sl
	})
	return f, sl
}

// TestSearchOverHTTP: q reaches the lister as Query.Q with the caller's own
// mailboxes, count and count_capped come back, the lister's errors map to
// 400 (with its text) and 501, an over-long q is refused before the lister
// sees it, and every search is one audit line holding the query.
func TestSearchOverHTTP(t *testing.T) {
	f, sl := newSearchFixture(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("for alice", "b"), at)
	f.deposit(archive.Envelope{From: "x@other.org", To: []string{"bob@example.com"}}, simpleMail("for bob", "b"), at)

	tests := []struct {
		name, q, user string
		status        int
		errText       string
		outcome       string
	}{
		{"search", "from:x@other.org invoice", "alice", http.StatusOK, "", access.OutcomeOK},
		{"bad query", "bad", "alice", http.StatusBadRequest, "unexpected end of query at 3", access.OutcomeBadRequest},
		{"no catalog", "nosearch", "bob", http.StatusNotImplemented, "search is not available", access.OutcomeBadRequest},
		{"too long", strings.Repeat("a", MaxQueryBytes+1), "alice", http.StatusBadRequest, "q: longer than", access.OutcomeBadRequest},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sl.queries())
			res := f.get("/v1/messages?q="+url.QueryEscape(tc.q), f.tokens[tc.user])
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if tc.status == http.StatusOK {
				var lr listResponse
				if err := json.Unmarshal(res.body, &lr); err != nil {
					t.Fatal(err)
				}
				if lr.Count != 41 || !lr.CountCapped {
					t.Errorf("count %d capped %v, want 41 true", lr.Count, lr.CountCapped)
				}
				if len(lr.Messages) != 1 || lr.Messages[0].Subject != "for alice" {
					t.Errorf("messages %+v, want alice's one", lr.Messages)
				}
				qs := sl.queries()
				if len(qs) != before+1 || qs[len(qs)-1].Q != tc.q || qs[len(qs)-1].All ||
					strings.Join(qs[len(qs)-1].Mailboxes, ",") != "alice@example.com" {
					t.Errorf("lister saw %+v, want Q %q for alice's mailbox", qs[before:], tc.q)
				}
			} else {
				var e struct{ Error string }
				if err := json.Unmarshal(res.body, &e); err != nil || !strings.Contains(e.Error, tc.errText) {
					t.Errorf("error body %s, want it to say %q", res.body, tc.errText)
				}
			}
			ls := f.waitAudit(i + 1)
			if len(ls) != i+1 {
				t.Fatalf("%d audit lines, want %d", len(ls), i+1)
			}
			l := ls[i]
			wantQ := tc.q
			if len(wantQ) > MaxQueryBytes {
				wantQ = wantQ[:MaxQueryBytes] + "…"
			}
			if l.Action != access.ActionList || l.Outcome != tc.outcome || l.Query != wantQ || l.User != tc.user {
				t.Errorf("audit line %+v, want list/%s by %s with the query", l.Event, tc.outcome, tc.user)
			}
		})
	}
}
