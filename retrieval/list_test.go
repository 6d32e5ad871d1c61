package retrieval

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/listing"
)

// TestListEqualTimestampsOverHTTP: messages received at the same nanosecond
// in two of bob's mailboxes page through the API once each, by id
// ascending, for every page size.
func TestListEqualTimestampsOverHTTP(t *testing.T) {
	f := newFixture(t)
	at := time.Date(2025, 5, 5, 5, 5, 5, 555, time.UTC)
	var want []string
	for i := range 6 {
		to := []string{"bob@example.com"}
		switch i % 3 {
		case 1:
			to = []string{"bob+news@example.com"}
		case 2:
			to = []string{"bob+news@example.com", "bob@example.com"}
		}
		want = append(want, f.deposit(archive.Envelope{From: "x@other.org", To: to}, simpleMail(fmt.Sprint("m", i), "b"), at))
	}
	slices.Sort(want)
	for _, limit := range []int{1, 2, 4, 6} {
		var got []string
		cursor := ""
		for range 10 {
			res := f.get(fmt.Sprintf("/v1/messages?limit=%d&cursor=%s", limit, url.QueryEscape(cursor)), f.tokens["bob"])
			var lr listResponse
			if err := json.Unmarshal(res.body, &lr); err != nil || res.status != 200 {
				t.Fatalf("limit %d: %d %s", limit, res.status, res.body)
			}
			for _, m := range lr.Messages {
				got = append(got, m.ID)
			}
			if cursor = lr.NextCursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, want)
		}
	}
}

// wrongLister returns every message of the archive whatever is asked: an
// index that is wrong.
type wrongLister struct{ msgs []listing.Message }

func (l wrongLister) List(ctx context.Context, q listing.Query) (listing.Page, error) {
	return listing.Page{Messages: l.msgs}, nil
}

// TestListerOutputIsAuthorised: what a lister returns is checked against
// the caller, and recipients are trimmed to what the caller may see.
func TestListerOutputIsAuthorised(t *testing.T) {
	f := newFixture(t)
	msgs := []listing.Message{
		{ID: archive.NewID(time.Now()), From: "carol@other.org", To: []string{"alice@example.com", "bcc@other.org"}},
		{ID: archive.NewID(time.Now()), From: "dave@other.org", To: []string{"bob@example.com"}},
	}
	srv := httptest.NewServer(NewHandler(Options{Vault: f.vault, Keys: f.keys, Lister: wrongLister{msgs}, Users: f.users, Audit: f.audit}))
	defer srv.Close()
	f.srv = srv
	for _, c := range []struct {
		user   string
		wantID []string
		wantTo [][]string
	}{
		{"alice", []string{msgs[0].ID}, [][]string{{"alice@example.com"}}},
		{"bob", []string{msgs[1].ID}, [][]string{{"bob@example.com"}}},
		{"auditor", []string{msgs[0].ID, msgs[1].ID}, [][]string{msgs[0].To, msgs[1].To}},
	} {
		res := f.get("/v1/messages", f.tokens[c.user])
		var lr listResponse
		if err := json.Unmarshal(res.body, &lr); err != nil || res.status != 200 {
			t.Fatalf("%s: %d %s", c.user, res.status, res.body)
		}
		var ids []string
		var tos [][]string
		for _, m := range lr.Messages {
			ids, tos = append(ids, m.ID), append(tos, m.To)
		}
		if !slices.Equal(ids, c.wantID) || fmt.Sprint(tos) != fmt.Sprint(c.wantTo) {
			t.Errorf("%s sees %v to %v, want %v to %v", c.user, ids, tos, c.wantID, c.wantTo)
		}
	}
}
