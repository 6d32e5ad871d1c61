package archive_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
)

// TestListTiesByIDAscending: messages received at the same nanosecond are
// listed by id, ascending, across pages; CursorAfter of any entry resumes
// just after it, in any mailbox's listing.
func TestListTiesByIDAscending(t *testing.T) {
	v, _ := newVault(t)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		to := "a@example.com"
		if i%2 == 1 {
			to = "b@example.com"
		}
		id, _, _ := deposit(t, v, message{env: archive.Envelope{From: "x@example.com", To: []string{to}}, at: t0, body: strings.Repeat("m", i+1)})
		want = append(want, id)
	}
	slices.Sort(want)
	for _, limit := range []int{1, 2, 5} {
		var got []string
		cursor := ""
		for range 10 {
			es, next, err := v.List(ctx, "", time.Time{}, time.Time{}, limit, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if !e.ReceivedAt.Equal(t0) {
					t.Fatalf("entry time %v, want %v", e.ReceivedAt, t0)
				}
				got = append(got, e.ID)
			}
			if next == "" {
				break
			}
			if want := archive.CursorAfter(es[len(es)-1]); next != want {
				t.Fatalf("List's cursor %q, CursorAfter of its last entry %q", next, want)
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: listed %v, want ids ascending %v", limit, got, want)
		}
	}
	// A cursor from the listing of every message positions a mailbox's.
	es, _, err := v.List(ctx, "b@example.com", time.Time{}, time.Time{}, 10, archive.CursorAfter(archive.Entry{ID: want[1], ReceivedAt: t0}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.ID <= want[1] {
			t.Errorf("after %s the mailbox listing returned %s", want[1], e.ID)
		}
	}
	if !archive.ValidCursor(archive.CursorAfter(archive.Entry{ID: want[0], ReceivedAt: t0})) || archive.ValidCursor("x") || archive.ValidCursor("") {
		t.Error("ValidCursor disagrees with List")
	}
}
