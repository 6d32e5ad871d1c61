package archivelist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/archivelist"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// archiveFixture is a real Vault over an fs store. Manifests are kept in
// the clear beside it: opening sealed ones is not this package's business,
// the opener is injected.
type archiveFixture struct {
	t     *testing.T
	vault *archive.Vault
	mu    sync.Mutex
	m     map[string]*sealed.Manifest
	fail  map[string]error // what opening that id returns
	logs  bytes.Buffer
}

func newArchive(t *testing.T) *archiveFixture {
	s, err := fsstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return &archiveFixture{t: t, vault: archive.NewVault(s, bytes.Repeat([]byte{7}, 32)), m: map[string]*sealed.Manifest{}, fail: map[string]error{}}
}

func (a *archiveFixture) open(ctx context.Context, id string) (*sealed.Manifest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fail[id]; err != nil {
		return nil, err
	}
	m, ok := a.m[id]
	if !ok {
		return nil, archive.ErrNotFound
	}
	return m, nil
}

func (a *archiveFixture) lister() *archivelist.Lister {
	return archivelist.New(a.vault, a.open, slog.New(slog.NewTextHandler(&a.logs, nil)))
}

// deposit indexes a message from x@other.org to the given recipients,
// received at at.
func (a *archiveFixture) deposit(at time.Time, to ...string) string {
	t := a.t
	t.Helper()
	ctx := context.Background()
	env := archive.Envelope{From: "x@other.org", To: to}
	id := archive.NewID(at)
	d, err := a.vault.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("sealed " + id)); err != nil {
		t.Fatal(err)
	}
	fp := a.vault.Fingerprint(env)
	fp.Write([]byte(id))
	rec := archive.Record{Envelope: env, ReceivedAt: at, Meta: map[string]string{"mv-version": "1"}, Manifest: []byte("sealed manifest"), Fingerprint: fp.Sum(nil)}
	if _, _, err := d.Commit(ctx, rec); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.m[id] = &sealed.Manifest{ID: id, ReceivedAt: at, From: env.From, To: to, Size: 42, Header: partmap.Header{Subject: "s " + id}, Parts: []partmap.Part{{Index: 0, Path: "1", ContentType: "text/plain"}}}
	a.mu.Unlock()
	return id
}

// listAll pages through q with limit and returns the ids in order.
func listAll(t *testing.T, l *archivelist.Lister, q listing.Query, limit int) []string {
	t.Helper()
	q.Limit = limit
	var ids []string
	for range 100 {
		p, err := l.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) > limit {
			t.Fatalf("page of %d, limit %d", len(p.Messages), limit)
		}
		for _, m := range p.Messages {
			ids = append(ids, m.ID)
		}
		if p.NextCursor == "" {
			return ids
		}
		if len(p.Messages) == 0 {
			t.Fatal("an empty page with a next cursor")
		}
		q.Cursor = p.NextCursor
	}
	t.Fatal("the listing does not end")
	return nil
}

// TestEqualTimestampsAcrossPagesAndMailboxes: messages received at the
// same nanosecond, to one or both of a reader's mailboxes, are listed once
// each, by id ascending, the order of the Vault's listing of everything,
// whatever the page size.
func TestEqualTimestampsAcrossPagesAndMailboxes(t *testing.T) {
	a := newArchive(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	var mine []string
	for i := range 9 {
		switch i % 3 {
		case 0:
			mine = append(mine, a.deposit(t0, "a@example.com"))
		case 1:
			mine = append(mine, a.deposit(t0, "b@example.com", "a@example.com"))
		case 2:
			mine = append(mine, a.deposit(t0, "b@example.com"))
		}
	}
	other := a.deposit(t0, "c@example.com")
	newer := a.deposit(t0.Add(time.Nanosecond), "b@example.com")
	older := a.deposit(t0.Add(-time.Nanosecond), "a@example.com")
	slices.Sort(mine)
	want := append(append([]string{newer}, mine...), older)
	all := append([]string{newer}, append(slices.Clone(mine), other)...)
	slices.Sort(all[1:])
	all = append(all, older)

	// The Vault's own order over every message, for comparison.
	var vaultOrder []string
	es, _, err := a.vault.List(context.Background(), "", time.Time{}, time.Time{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		vaultOrder = append(vaultOrder, e.ID)
	}
	if !slices.Equal(vaultOrder, all) {
		t.Fatalf("the Vault lists %v, want %v", vaultOrder, all)
	}

	l := a.lister()
	for _, c := range []struct {
		name string
		q    listing.Query
		want []string
	}{
		{"reader", listing.Query{Mailboxes: []string{"a@example.com", "b@example.com"}}, want},
		{"reader, mailboxes the other way round", listing.Query{Mailboxes: []string{"b@example.com", "a@example.com"}}, want},
		{"auditor", listing.Query{All: true}, all},
	} {
		for _, limit := range []int{1, 2, 3, 4, 7, 12, 50} {
			t.Run(fmt.Sprintf("%s/limit %d", c.name, limit), func(t *testing.T) {
				if got := listAll(t, l, c.q, limit); !slices.Equal(got, c.want) {
					t.Errorf("listed\n %v\nwant\n %v", got, c.want)
				}
			})
		}
	}
}

func TestNewestFirstAndTimeRange(t *testing.T) {
	a := newArchive(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range 7 {
		to := []string{"a@example.com"}
		if i%2 == 1 {
			to = []string{"b@example.com", "a@example.com"}
		}
		want = append([]string{a.deposit(base.Add(time.Duration(i)*time.Hour), to...)}, want...)
	}
	l := a.lister()
	q := listing.Query{Mailboxes: []string{"a@example.com", "b@example.com"}}
	if got := listAll(t, l, q, 3); !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	q.Since, q.Until = base.Add(2*time.Hour), base.Add(5*time.Hour)
	if got := listAll(t, l, q, 2); !slices.Equal(got, want[2:5]) {
		t.Errorf("[since, until) listed %v, want %v", got, want[2:5])
	}
	p, err := l.List(context.Background(), listing.Query{Mailboxes: []string{"a@example.com"}, Limit: 1})
	if err != nil || len(p.Messages) != 1 {
		t.Fatal(p, err)
	}
	m := p.Messages[0]
	if m.ID != want[0] || m.Size != 42 || m.Header.Subject != "s "+m.ID || len(m.Parts) != 1 || m.From != "x@other.org" || !slices.Equal(m.To, []string{"a@example.com"}) {
		t.Errorf("listed message %+v", m)
	}
}

func TestLeftOutAndFailures(t *testing.T) {
	a := newArchive(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 4 {
		ids = append([]string{a.deposit(base.Add(time.Duration(i)*time.Minute), "a@example.com")}, ids...)
	}
	a.fail[ids[1]] = archive.ErrNotFound
	a.fail[ids[2]] = fmt.Errorf("open manifest: %w", sealer.ErrDecrypt)
	l := a.lister()
	q := listing.Query{Mailboxes: []string{"a@example.com"}, Limit: 3}
	p, err := l.List(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range p.Messages {
		got = append(got, m.ID)
	}
	// The page covers three entries, one of them is shown; the cursor goes on
	// after the third.
	if !slices.Equal(got, ids[:1]) || p.NextCursor == "" {
		t.Fatalf("page %v next %q, want [%s] and a next page", got, p.NextCursor, ids[0])
	}
	if !strings.Contains(a.logs.String(), ids[2]) || strings.Contains(a.logs.String(), ids[1]) {
		t.Errorf("want the failed authentication logged, the vanished message not:\n%s", a.logs.String())
	}
	q.Cursor = p.NextCursor
	if p, err = l.List(context.Background(), q); err != nil || len(p.Messages) != 1 || p.Messages[0].ID != ids[3] || p.NextCursor != "" {
		t.Fatalf("second page %+v, %v", p, err)
	}

	a.fail[ids[0]] = errors.New("store on fire")
	if _, err := l.List(context.Background(), listing.Query{All: true, Limit: 10}); err == nil || !strings.Contains(err.Error(), "store on fire") {
		t.Errorf("a failing open: %v", err)
	}
	a.m[ids[3]].ID = ids[0]
	delete(a.fail, ids[0])
	if _, err := l.List(context.Background(), listing.Query{All: true, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.logs.String(), ids[3]) {
		t.Error("a manifest naming another id was not treated as failing authentication")
	}
}

func TestQueryEdges(t *testing.T) {
	a := newArchive(t)
	a.deposit(time.Now(), "a@example.com")
	l := a.lister()
	ctx := context.Background()
	for _, c := range []string{"..", "x", "eyJ0IjoiMjAyNS0wMS0wMVQwMDowMDowMFoiLCJpZCI6Ii4uL3gifQ", strings.Repeat("A", 200)} {
		if _, err := l.List(ctx, listing.Query{All: true, Cursor: c}); !errors.Is(err, listing.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
	if p, err := l.List(ctx, listing.Query{Limit: 10}); err != nil || len(p.Messages) != 0 {
		t.Errorf("no mailboxes and not All: %+v %v, want nothing", p, err)
	}
	if _, err := l.List(ctx, listing.Query{Mailboxes: []string{"a@example.com", ""}, Limit: 10}); err == nil {
		t.Error("an empty mailbox was taken (it would list everything)")
	}
}
