package archive_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
)

var testIndexKey = bytes.Repeat([]byte{0x5a}, 32)

// t0 is a receive time with nanoseconds, to check they survive.
var t0 = time.Date(2026, 11, 23, 11, 52, 0, 123456789, time.UTC)

func newVault(t testing.TB) (*archive.Vault, archive.Store) {
	t.Helper()
	s, err := fsstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return archive.NewVault(s, testIndexKey), s
}

// sealed stands in for sealer output: archive never looks inside.
func sealed(body string) []byte { return []byte("SEALED\x00" + body) }

type message struct {
	env  archive.Envelope
	at   time.Time
	body string
}

func fingerprint(v *archive.Vault, m message) []byte {
	h := v.Fingerprint(m.env)
	h.Write([]byte(m.body))
	return h.Sum(nil)
}

func record(v *archive.Vault, m message) archive.Record {
	return archive.Record{
		Envelope:    m.env,
		ReceivedAt:  m.at,
		Meta:        map[string]string{"mv-version": "1", "mv-wrapped-key": "AAEC+/8=", "mv-context": `{"a":"b"}`},
		Manifest:    sealed("manifest of " + m.body),
		Fingerprint: fingerprint(v, m),
	}
}

// deposit archives m as a new id and returns what Commit returned, keeping
// the deposit for Undo.
func deposit(t testing.TB, v *archive.Vault, m message) (string, bool, *archive.Deposit) {
	t.Helper()
	ctx := context.Background()
	d, err := v.Begin(ctx, archive.NewID(m.at))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(sealed(m.body)); err != nil {
		t.Fatal(err)
	}
	id, dup, err := d.Commit(ctx, record(v, m))
	if err != nil {
		t.Fatal(err)
	}
	return id, dup, d
}

func allKeys(t testing.TB, s archive.Store) []string {
	t.Helper()
	var keys []string
	after := ""
	for {
		page, err := s.List(context.Background(), "", after, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			keys = append(keys, o.Key)
		}
		if len(page) < 100 {
			return keys
		}
		after = page[len(page)-1].Key
	}
}

func countPrefix(keys []string, prefix string) int {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func listAll(t testing.TB, v *archive.Vault, mailbox string, since, until time.Time, limit int) []archive.Entry {
	t.Helper()
	var out []archive.Entry
	cursor := ""
	for pages := 0; ; pages++ {
		es, next, err := v.List(context.Background(), mailbox, since, until, limit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) > max(limit, 1) {
			t.Fatalf("page of %d, limit %d", len(es), limit)
		}
		out = append(out, es...)
		if next == "" {
			return out
		}
		if len(es) == 0 {
			t.Fatal("empty page with a cursor")
		}
		if pages > 10000 {
			t.Fatal("too many pages")
		}
		cursor = next
	}
}

func ids(es []archive.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	var prev string
	for i := range 2000 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		id := archive.NewID(at)
		if !archive.ValidID(id) {
			t.Fatalf("NewID = %q is not ValidID", id)
		}
		if len(id) != 39 || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("NewID = %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("ids not in time order: %q after %q", id, prev)
		}
		prev = id
	}
	// Unguessable: ids of the same instant differ in many places.
	a, b := archive.NewID(t0), archive.NewID(t0)
	if a[:13] != b[:13] || a[13:] == b[13:] {
		t.Errorf("same-instant ids %q %q", a, b)
	}
	for _, at := range []time.Time{{}, time.Unix(-5, 0), time.Unix(0, 0), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)} {
		if id := archive.NewID(at); !archive.ValidID(id) {
			t.Errorf("NewID(%v) = %q", at, id)
		}
	}
}

func TestValidID(t *testing.T) {
	good := archive.NewID(t0)
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{good, true},
		{strings.Repeat("0", 39), true},
		{strings.Repeat("v", 39), true},
		{"", false},
		{good[:38], false},
		{good + "0", false},
		{strings.ToUpper(good), false},
		{"w" + good[1:], false},
		{"z" + good[1:], false},
		{"../" + good[3:], false},
		{good[:36] + "/..", false},
		{"%2e%2e" + good[6:], false},
		{good[:37] + "\u00e9", false}, // 39 bytes, 38 runes
		{good[:38] + "\x00", false},
		{good[:38] + " ", false},
		{good[:38] + "-", false},
		{good[:38] + ".", false},
		{strings.Repeat("a", 10<<10), false},
	} {
		if got := archive.ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
	huge := strings.Repeat("0", 10<<20)
	start := time.Now()
	for range 1000 {
		archive.ValidID(huge)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("ValidID of 10 MiB took %v per call: it should reject by length", d/1000)
	}
}

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com":             "alice@example.com",
		"<Alice@Example.COM>":           "alice@example.com",
		"  <alice@example.com>  ":       "alice@example.com",
		"< alice@example.com >":         "alice@example.com",
		"\tBOB@EXAMPLE.ORG\r\n":         "bob@example.org",
		"User+Tag@Example.com":          "user+tag@example.com",
		"<>":                            "",
		"":                              "",
		"   ":                           "",
		"<Ünïcödé@Bücher.example>":      "Ünïcödé@xn--bcher-kva.example",
		"ünïcödé@xn--BCHER-kva.example": "ünïcödé@xn--bcher-kva.example",
		"用户@例子.广告":                      "用户@xn--fsqu00a.xn--4rr70v",
		"<a@b":                          "<a@b",
		`"Quoted Local"@Example.Com`:    "quoted local@example.com",
		`"bob"@Example.Com`:             "bob@example.com",
		`"a\\b\"c"@x.test`:              `a\b"c@x.test`,
		`"broken"quote"@x.test`:         `"broken"quote"@x.test`,
		// Unicode case mapping would fold these into another mailbox.
		"alİce@example.test":      "alİce@example.test",
		"\u212Aate@example.test":  "\u212Aate@example.test",
		"user@[192.0.2.1]":        "user@[192.0.2.1]",
		"user@[IPv6:2001:DB8::1]": "user@[ipv6:2001:db8::1]",
		"no-at-sign":              "no-at-sign",
	} {
		if got := archive.NormalizeAddress(in); got != want {
			t.Errorf("NormalizeAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	v, _ := newVault(t)
	fp := func(from string, to []string, body string) string {
		return fmt.Sprintf("%x", fingerprint(v, message{env: archive.Envelope{From: from, To: to}, body: body}))
	}
	base := fp("a@x", []string{"b@x", "c@x"}, "body")
	if got := fp("a@x", []string{"b@x", "c@x"}, "body"); got != base {
		t.Error("equal envelope and bytes: fingerprints differ")
	}
	if got := fp("<A@X>", []string{" B@x", "<c@X>"}, "body"); got != base {
		t.Error("envelope differing only in case, brackets and space: fingerprints differ")
	}
	for name, got := range map[string]string{
		"body":            fp("a@x", []string{"b@x", "c@x"}, "body2"),
		"sender":          fp("z@x", []string{"b@x", "c@x"}, "body"),
		"order":           fp("a@x", []string{"c@x", "b@x"}, "body"),
		"recipient":       fp("a@x", []string{"b@x"}, "body"),
		"shifted":         fp("a@x", []string{"b@x", "c@xbody"}, ""),
		"null sender":     fp("", []string{"b@x", "c@x"}, "body"),
		"empty recipient": fp("a@x", []string{"b@x", "c@x", ""}, "body"),
	} {
		if got == base {
			t.Errorf("%s changed, fingerprint did not", name)
		}
	}
	if fp("", []string{""}, "\x00\x00\x00\x00") == fp("", nil, "\x00\x00\x00\x00\x00\x00\x00\x00") {
		t.Error("an empty recipient collides with message bytes")
	}
	other := archive.NewVault(v.Store(), bytes.Repeat([]byte{1}, 32))
	if fmt.Sprintf("%x", fingerprint(other, message{env: archive.Envelope{From: "a@x", To: []string{"b@x", "c@x"}}, body: "body"})) == base {
		t.Error("fingerprint does not depend on the index key")
	}
}

func TestCommitAndRead(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	m := message{env: archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com"}}, at: t0, body: strings.Repeat("0123456789", 1000)}
	id, dup, _ := deposit(t, v, m)
	if dup {
		t.Fatal("first commit is a duplicate")
	}
	info, err := v.Head(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(record(v, m).Meta)
	want[archive.MetaReceivedAt] = "2026-11-23T11:52:00.123456789Z"
	if !maps.Equal(info.Metadata, want) {
		t.Errorf("metadata = %v\nwant %v", info.Metadata, want)
	}
	if info.Size != int64(len(sealed(m.body))) {
		t.Errorf("size = %d", info.Size)
	}
	full := sealed(m.body)
	for _, r := range []struct{ off, n int64 }{{0, -1}, {5, 10}, {int64(len(full)) - 3, 100}, {int64(len(full)), -1}} {
		rc, err := v.ReadMessage(ctx, id, r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		w := full[r.off:]
		if r.n >= 0 && r.n < int64(len(w)) {
			w = w[:r.n]
		}
		if !bytes.Equal(b, w) {
			t.Errorf("ReadMessage [%d,%+d) = %d bytes, want %d", r.off, r.n, len(b), len(w))
		}
	}
	man, err := v.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(man, sealed("manifest of "+m.body)) {
		t.Errorf("manifest = %q", man)
	}
	keys := allKeys(t, s)
	if len(keys) != 6 { // msg, manifest, fp, 2 idx, all
		t.Errorf("keys = %q", keys)
	}
	if _, err := v.Head(ctx, archive.NewID(t0)); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("head of a missing id: %v", err)
	}
	if _, err := v.Manifest(ctx, archive.NewID(t0)); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("manifest of a missing id: %v", err)
	}
}

func TestDuplicateCommit(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	m := message{env: archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com", "carol@example.com"}}, at: t0, body: "hello"}
	first, dup, _ := deposit(t, v, m)
	if dup {
		t.Fatal("first is a duplicate")
	}
	before := allKeys(t, s)

	// Postfix re-sends a minute later: same envelope and bytes.
	retry := m
	retry.at = t0.Add(time.Minute)
	second, dup, d := deposit(t, v, retry)
	if !dup || second != first {
		t.Fatalf("retry = %q, duplicate %v; want %q, true", second, dup, first)
	}
	after := allKeys(t, s)
	if !slices.Equal(after, before) {
		t.Errorf("retry changed the store:\nbefore %q\n after %q", before, after)
	}
	if n := countPrefix(after, "msg/"); n != 2 {
		t.Errorf("%d msg/ objects, want the message and its manifest", n)
	}
	if err := d.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	d.Abort()
	if got := allKeys(t, s); !slices.Equal(got, before) {
		t.Errorf("Undo or Abort of a duplicate changed the store: %q", got)
	}
	if _, err := v.Head(ctx, first); err != nil {
		t.Errorf("original gone: %v", err)
	}

	// Lost index entries are restored by the retry.
	for _, k := range before {
		if strings.HasPrefix(k, "idx/") || strings.HasPrefix(k, "all/") {
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if id, dup, _ := deposit(t, v, retry); !dup || id != first {
		t.Fatalf("retry = %q, %v", id, dup)
	}
	if got := allKeys(t, s); !slices.Equal(got, before) {
		t.Errorf("index not restored:\n got %q\nwant %q", got, before)
	}
	// The restored entries carry the original receive time.
	if es := listAll(t, v, "bob@example.com", time.Time{}, time.Time{}, 10); len(es) != 1 || !es[0].ReceivedAt.Equal(t0) {
		t.Errorf("listing = %v", es)
	}

	// A different message from the same envelope is not a duplicate.
	other := m
	other.body = "hello again"
	if id, dup, _ := deposit(t, v, other); dup || id == first {
		t.Errorf("different body: %q, %v", id, dup)
	}
}

func TestConcurrentDuplicateCommits(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	m := message{env: archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com"}}, at: t0, body: "same"}
	const n = 16
	deps := make([]*archive.Deposit, n)
	for i := range deps {
		d, err := v.Begin(ctx, archive.NewID(t0.Add(time.Duration(i)*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		d.Write(sealed(m.body))
		deps[i] = d
	}
	type result struct {
		id  string
		dup bool
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, d := range deps {
		wg.Go(func() {
			<-start
			r := record(v, m)
			r.ReceivedAt = t0.Add(time.Duration(i) * time.Millisecond)
			id, dup, err := d.Commit(ctx, r)
			results[i] = result{id, dup, err}
		})
	}
	close(start)
	wg.Wait()
	// In one process, a commit that meets another of the same message in
	// progress answers ErrInProgress (the client retries later); the others
	// are the winner or duplicates of it.
	winners := 0
	var id string
	for i, r := range results {
		if errors.Is(r.err, archive.ErrInProgress) {
			continue
		}
		if r.err != nil {
			t.Fatalf("commit %d: %v", i, r.err)
		}
		if !r.dup {
			winners++
		}
		if id == "" {
			id = r.id
		}
		if r.id != id {
			t.Errorf("commit %d returned %q, another %q", i, r.id, id)
		}
	}
	if winners != 1 {
		t.Errorf("%d commits stored the message, want 1", winners)
	}
	keys := allKeys(t, s)
	want := []string{"msg/" + id, "msg/" + id + ".manifest"}
	var got []string
	for _, k := range keys {
		if strings.HasPrefix(k, "msg/") {
			got = append(got, k)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("msg/ objects = %q, want %q", got, want)
	}
	if len(keys) != 6 {
		t.Errorf("store = %q", keys)
	}
	if ents, _ := v.Store().List(ctx, "fp/", "", 10); len(ents) != 1 {
		t.Errorf("%d markers", len(ents))
	}
}

func TestUndo(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	keep := message{env: archive.Envelope{From: "x@example.com", To: []string{"y@example.com"}}, at: t0, body: "keep"}
	keepID, _, _ := deposit(t, v, keep)
	before := allKeys(t, s)

	m := message{env: archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com", "y@example.com"}}, at: t0.Add(time.Second), body: "undone"}
	id, _, d := deposit(t, v, m)
	if err := d.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if got := allKeys(t, s); !slices.Equal(got, before) {
		t.Errorf("after Undo:\n got %q\nwant %q", got, before)
	}
	for _, k := range allKeys(t, s) {
		if strings.Contains(k, id) {
			t.Errorf("%s left behind", k)
		}
	}
	if _, err := v.Head(ctx, id); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("head after undo: %v", err)
	}
	if err := d.Undo(ctx); err != nil {
		t.Errorf("second Undo: %v", err)
	}
	d.Abort()
	if es := listAll(t, v, "", time.Time{}, time.Time{}, 10); !slices.Equal(ids(es), []string{keepID}) {
		t.Errorf("listing = %q", ids(es))
	}
	// The retry stores it anew.
	id2, dup, _ := deposit(t, v, m)
	if dup || id2 == id {
		t.Errorf("retry after Undo: %q, duplicate %v", id2, dup)
	}
}

func TestAbort(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	d, err := v.Begin(ctx, archive.NewID(t0))
	if err != nil {
		t.Fatal(err)
	}
	d.Write(sealed("aborted"))
	d.Abort()
	d.Abort()
	if _, _, err := d.Commit(ctx, record(v, message{at: t0, body: "aborted"})); err == nil {
		t.Error("commit after abort: no error")
	}
	if _, err := d.Write([]byte("x")); err == nil {
		t.Error("write after abort: no error")
	}
	if keys := allKeys(t, s); len(keys) != 0 {
		t.Errorf("store = %q", keys)
	}
	// Abort after a commit is a no-op.
	id, _, d := deposit(t, v, message{env: archive.Envelope{To: []string{"a@x"}}, at: t0, body: "kept"})
	d.Abort()
	if _, err := v.Head(ctx, id); err != nil {
		t.Errorf("abort after commit removed the message: %v", err)
	}
}

func TestBeginInvalidID(t *testing.T) {
	v, s := newVault(t)
	for _, id := range []string{"", "../x", "msg", strings.Repeat("0", 40)} {
		if _, err := v.Begin(context.Background(), id); err == nil {
			t.Errorf("Begin(%q): no error", id)
		}
	}
	if keys := allKeys(t, s); len(keys) != 0 {
		t.Errorf("store = %q", keys)
	}
}

func TestCommitRejectsBadRecord(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	m := message{env: archive.Envelope{To: []string{"a@x"}}, at: t0, body: "b"}
	for name, mutate := range map[string]func(*archive.Record){
		"short fingerprint": func(r *archive.Record) { r.Fingerprint = r.Fingerprint[:16] },
		"no fingerprint":    func(r *archive.Record) { r.Fingerprint = nil },
		"no time":           func(r *archive.Record) { r.ReceivedAt = time.Time{} },
		"bad metadata":      func(r *archive.Record) { r.Meta = map[string]string{"Bad Key": "x"} },
	} {
		d, err := v.Begin(ctx, archive.NewID(t0))
		if err != nil {
			t.Fatal(err)
		}
		d.Write(sealed(m.body))
		r := record(v, m)
		mutate(&r)
		if _, _, err := d.Commit(ctx, r); err == nil {
			t.Errorf("%s: no error", name)
		}
		d.Abort()
		if keys := allKeys(t, s); len(keys) != 0 {
			t.Errorf("%s: store = %q", name, keys)
		}
	}
}

// faultStore fails the creation or the commit of chosen keys, and counts
// calls.
type faultStore struct {
	archive.Store
	failCreate func(key string) bool
	failCommit func(key string) bool
	calls      atomic.Int64
	lastLimit  atomic.Int64
}

var errInjected = errors.New("injected failure")

func (f *faultStore) Create(ctx context.Context, key string) (archive.ObjectWriter, error) {
	f.calls.Add(1)
	if f.failCreate != nil && f.failCreate(key) {
		return nil, errInjected
	}
	w, err := f.Store.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return &faultWriter{ObjectWriter: w, fail: f.failCommit != nil && f.failCommit(key)}, nil
}

func (f *faultStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f.calls.Add(1)
	return f.Store.Get(ctx, key, off, n)
}

func (f *faultStore) Head(ctx context.Context, key string) (archive.ObjectInfo, error) {
	f.calls.Add(1)
	return f.Store.Head(ctx, key)
}

func (f *faultStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]archive.ObjectInfo, error) {
	f.calls.Add(1)
	f.lastLimit.Store(int64(limit))
	return f.Store.List(ctx, prefix, startAfter, limit)
}

func (f *faultStore) Delete(ctx context.Context, key string) error {
	f.calls.Add(1)
	return f.Store.Delete(ctx, key)
}

type faultWriter struct {
	archive.ObjectWriter
	fail bool
}

func (w *faultWriter) Commit(ctx context.Context, meta map[string]string, ifAbsent bool) error {
	if w.fail {
		w.ObjectWriter.Abort()
		return errInjected
	}
	return w.ObjectWriter.Commit(ctx, meta, ifAbsent)
}

func TestCommitFailureRemovesEverything(t *testing.T) {
	m := message{env: archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com", "carol@example.com"}}, at: t0, body: "fails"}
	for _, target := range []string{"msg/", ".manifest", "fp/", "idx/", "all/"} {
		match := func(key string) bool {
			if target == "msg/" {
				return strings.HasPrefix(key, "msg/") && !strings.HasSuffix(key, ".manifest")
			}
			return strings.HasPrefix(key, target) || strings.HasSuffix(key, target)
		}
		for _, mode := range []string{"create", "commit"} {
			t.Run(target+mode, func(t *testing.T) {
				fs := newFSStore(t)
				f := &faultStore{Store: fs}
				if mode == "create" && target != "msg/" {
					f.failCreate = match
				} else {
					f.failCommit = match
				}
				v := archive.NewVault(f, testIndexKey)
				ctx, cancel := context.WithCancel(context.Background())
				d, err := v.Begin(ctx, archive.NewID(t0))
				if err != nil {
					t.Fatal(err)
				}
				d.Write(sealed(m.body))
				_, _, err = d.Commit(ctx, record(v, m))
				if !errors.Is(err, errInjected) {
					t.Fatalf("commit: err = %v, want the injected failure", err)
				}
				if !strings.HasPrefix(err.Error(), "archive: commit ") {
					t.Errorf("error %q", err)
				}
				cancel()
				d.Abort()
				if err := d.Undo(context.Background()); err != nil {
					t.Errorf("undo after failed commit: %v", err)
				}
				if keys := allKeys(t, fs); len(keys) != 0 {
					t.Errorf("store after failed commit = %q", keys)
				}
				// The retry archives it.
				if id, dup, _ := deposit(t, archive.NewVault(fs, testIndexKey), m); dup || id == "" {
					t.Errorf("retry: %q, %v", id, dup)
				}
			})
		}
	}
}

func TestInvalidIDsNeverReachTheStore(t *testing.T) {
	f := &faultStore{Store: newFSStore(t)}
	v := archive.NewVault(f, testIndexKey)
	ctx := context.Background()
	for _, id := range []string{"", "..", "../fp/x", "%2e%2e", "msg/x", strings.Repeat("a", 10<<10), archive.NewID(t0) + ".manifest", "ÄÖ"} {
		if _, err := v.Head(ctx, id); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("Head(%q): %v", id, err)
		}
		if _, err := v.ReadMessage(ctx, id, 0, -1); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("ReadMessage(%q): %v", id, err)
		}
		if _, err := v.Manifest(ctx, id); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("Manifest(%q): %v", id, err)
		}
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d store calls for invalid ids", n)
	}
}

func TestManifestSizeBound(t *testing.T) {
	v, s := newVault(t)
	id := archive.NewID(t0)
	w, err := s.Create(context.Background(), "msg/"+id+".manifest")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 17<<20+1))
	if err := w.Commit(context.Background(), nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Manifest(context.Background(), id); err == nil || errors.Is(err, archive.ErrNotFound) {
		t.Errorf("manifest over the bound: err = %v", err)
	}
}

func TestStaleMarker(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	m := message{env: archive.Envelope{To: []string{"a@example.com"}}, at: t0, body: "stale"}
	fpKey := fmt.Sprintf("fp/%x", fingerprint(v, m))
	for _, content := range []string{archive.NewID(t0), "garbage"} {
		w, err := s.Create(ctx, fpKey)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
		if err := w.Commit(ctx, nil, false); err != nil {
			t.Fatal(err)
		}
		id, dup, d := deposit(t, v, m)
		if dup {
			t.Fatalf("marker %q naming no message made a duplicate", content)
		}
		if _, err := v.Head(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := d.Undo(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// listFixture deposits n messages a minute apart, in shuffled order, each
// from one of three senders to bob or dave.
func listFixture(t *testing.T, v *archive.Vault, n int) []message {
	var ms []message
	for i := range n {
		ms = append(ms, message{
			env: archive.Envelope{
				From: []string{"alice@example.com", "<>", "Carol@Example.com"}[i%3],
				To:   []string{[]string{"bob@example.com", "dave@example.com"}[i%2]},
			},
			at:   t0.Add(time.Duration(i) * time.Minute),
			body: fmt.Sprintf("message %d", i),
		})
	}
	shuffled := slices.Clone(ms)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, m := range shuffled {
		deposit(t, v, m)
	}
	return ms
}

// newestFirst returns the receive times of ms, filtered, newest first.
func newestFirst(ms []message, keep func(message) bool) []time.Time {
	var out []time.Time
	for i := len(ms) - 1; i >= 0; i-- {
		if keep(ms[i]) {
			out = append(out, ms[i].at)
		}
	}
	return out
}

func times(es []archive.Entry) []time.Time {
	var out []time.Time
	for _, e := range es {
		out = append(out, e.ReceivedAt)
	}
	return out
}

func equalTimes(a, b []time.Time) bool {
	return slices.EqualFunc(a, b, time.Time.Equal)
}

func TestListNewestFirstAcrossPages(t *testing.T) {
	v, _ := newVault(t)
	ms := listFixture(t, v, 23)
	want := newestFirst(ms, func(message) bool { return true })
	for _, limit := range []int{1, 2, 5, 22, 23, 24, 1000} {
		es := listAll(t, v, "", time.Time{}, time.Time{}, limit)
		if !equalTimes(times(es), want) {
			t.Errorf("limit %d: %v", limit, times(es))
		}
		for i, e := range es {
			if !archive.ValidID(e.ID) || e.ID[:13] != archive.NewID(e.ReceivedAt)[:13] {
				t.Errorf("entry %d: id %q does not match %v", i, e.ID, e.ReceivedAt)
			}
		}
	}
	// The last page has no cursor, also when it is exactly full.
	es, next, err := v.List(context.Background(), "", time.Time{}, time.Time{}, 23, "")
	if err != nil || len(es) != 23 || next != "" {
		t.Errorf("full single page: %d entries, cursor %q, %v", len(es), next, err)
	}
	es, next, err = v.List(context.Background(), "", time.Time{}, time.Time{}, 22, "")
	if err != nil || len(es) != 22 || next == "" {
		t.Errorf("page one short: %d entries, cursor %q, %v", len(es), next, err)
	}
	es, next, err = v.List(context.Background(), "", time.Time{}, time.Time{}, 22, next)
	if err != nil || len(es) != 1 || next != "" || !es[0].ReceivedAt.Equal(t0) {
		t.Errorf("second page: %v, cursor %q, %v", es, next, err)
	}
}

func TestListSinceUntil(t *testing.T) {
	v, _ := newVault(t)
	ms := listFixture(t, v, 20)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	for _, tc := range []struct {
		name         string
		since, until time.Time
	}{
		{"window", at(5), at(10)},
		{"since only", at(15), time.Time{}},
		{"until only", time.Time{}, at(3)},
		{"between messages", at(5).Add(time.Second), at(10).Add(-time.Second)},
		{"one nanosecond", at(7), at(7).Add(time.Nanosecond)},
		{"empty", at(7), at(7)},
		{"inverted", at(10), at(5)},
		{"before all", time.Time{}, at(0)},
		{"after all", at(20), time.Time{}},
		{"everything", at(0), at(20)},
		{"before 1970", time.Unix(-100, 0), time.Time{}},
	} {
		want := newestFirst(ms, func(m message) bool {
			return (tc.since.IsZero() || !m.at.Before(tc.since)) && (tc.until.IsZero() || m.at.Before(tc.until))
		})
		for _, limit := range []int{1, 2, 100} {
			if got := times(listAll(t, v, "", tc.since, tc.until, limit)); !equalTimes(got, want) {
				t.Errorf("%s, limit %d:\n got %v\nwant %v", tc.name, limit, got, want)
			}
		}
		// The same window per mailbox.
		want = newestFirst(ms, func(m message) bool {
			return m.env.To[0] == "dave@example.com" && (tc.since.IsZero() || !m.at.Before(tc.since)) && (tc.until.IsZero() || m.at.Before(tc.until))
		})
		if got := times(listAll(t, v, "dave@example.com", tc.since, tc.until, 2)); !equalTimes(got, want) {
			t.Errorf("%s, dave:\n got %v\nwant %v", tc.name, got, want)
		}
	}
}

func TestListMailbox(t *testing.T) {
	v, _ := newVault(t)
	ms := listFixture(t, v, 12)
	for _, tc := range []struct {
		mailbox string
		keep    func(message) bool
	}{
		{"bob@example.com", func(m message) bool { return m.env.To[0] == "bob@example.com" }},
		{"<BOB@example.com> ", func(m message) bool { return m.env.To[0] == "bob@example.com" }},
		{"dave@example.com", func(m message) bool { return m.env.To[0] == "dave@example.com" }},
		{"alice@example.com", func(m message) bool { return m.env.From == "alice@example.com" }},
		{"carol@example.com", func(m message) bool { return m.env.From == "Carol@Example.com" }},
		{"bob+tag@example.com", func(message) bool { return false }},
		{"mallory@example.com", func(message) bool { return false }},
	} {
		want := newestFirst(ms, tc.keep)
		if got := times(listAll(t, v, tc.mailbox, time.Time{}, time.Time{}, 3)); !equalTimes(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.mailbox, got, want)
		}
	}
	for _, mailbox := range []string{"<>", " ", "< >"} {
		if _, _, err := v.List(context.Background(), mailbox, time.Time{}, time.Time{}, 10, ""); err == nil {
			t.Errorf("List(%q): no error", mailbox)
		}
	}

	// A cursor taken from bob's listing, or from the full one, only
	// positions dave's listing in time.
	ctx := context.Background()
	for _, from := range []string{"bob@example.com", ""} {
		_, cursor, err := v.List(ctx, from, time.Time{}, time.Time{}, 3, "")
		if err != nil || cursor == "" {
			t.Fatal(err)
		}
		es, _, err := v.List(ctx, "dave@example.com", time.Time{}, time.Time{}, 100, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if i := int(e.ReceivedAt.Sub(t0) / time.Minute); ms[i].env.To[0] != "dave@example.com" {
				t.Errorf("dave's listing with %q's cursor holds message %d", from, i)
			}
		}
	}
}

func TestListBadCursor(t *testing.T) {
	v, _ := newVault(t)
	listFixture(t, v, 3)
	suffix := fmt.Sprintf("%019d-%s", 42, archive.NewID(t0))
	for _, c := range []string{
		"!!!",
		"Li4vLi4v",               // "../../"
		"bXNnLw",                 // "msg/"
		strings.Repeat("A", 200), // too long
		b64(suffix + "x"),        // one byte too many
		b64(strings.Replace(suffix, "-", "/", 1)),
		b64("../" + suffix[3:]),
		b64(suffix[:20] + strings.ToUpper(suffix[20:])),
		b64("idx/" + suffix),
		b64(suffix) + "=",
	} {
		if _, _, err := v.List(context.Background(), "", time.Time{}, time.Time{}, 10, c); err == nil {
			t.Errorf("cursor %q: no error", c)
		}
	}
	if _, _, err := v.List(context.Background(), "", time.Time{}, time.Time{}, 10, b64(suffix)); err != nil {
		t.Errorf("well-formed cursor: %v", err)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestListLimitClamp(t *testing.T) {
	f := &faultStore{Store: newFSStore(t)}
	v := archive.NewVault(f, testIndexKey)
	listFixture(t, v, 3)
	for _, tc := range []struct{ limit, ask int }{{0, 51}, {-5, 51}, {1, 2}, {50, 51}, {1000, 1001}, {1001, 1001}, {1 << 30, 1001}} {
		if _, _, err := v.List(context.Background(), "", time.Time{}, time.Time{}, tc.limit, ""); err != nil {
			t.Fatal(err)
		}
		if got := f.lastLimit.Load(); got != int64(tc.ask) {
			t.Errorf("limit %d asked the store for %d, want %d", tc.limit, got, tc.ask)
		}
	}
}

// TestKeysRevealNoAddress checks every object key, and every file name of
// the fs store, for the addresses of the messages and their parts.
func TestKeysRevealNoAddress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := archive.NewVault(s, testIndexKey)
	addrs := []string{"xavier.wyatt@zyx-example.org", "Yolanda+Work@Example.COM", "zz@wxy.example", "Ünïcödé@bücher.example"}
	for i := range addrs {
		deposit(t, v, message{
			env: archive.Envelope{From: addrs[i], To: []string{addrs[(i+1)%len(addrs)], addrs[(i+2)%len(addrs)]}},
			at:  t0.Add(time.Duration(i) * time.Second), body: fmt.Sprint(i),
		})
	}
	var needles []string
	for _, a := range addrs {
		n := archive.NormalizeAddress(a)
		local, domain, _ := strings.Cut(n, "@")
		needles = append(needles, a, n, local, domain, strings.Split(domain, ".")[0])
		if base, _, ok := strings.Cut(local, "+"); ok {
			needles = append(needles, base)
		}
	}
	keys := allKeys(t, s)
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		keys = append(keys, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 20 {
		t.Fatalf("only %d keys", len(keys))
	}
	for _, k := range keys {
		if strings.Contains(k, "@") {
			t.Errorf("key %q holds an @", k)
		}
		for _, n := range needles {
			if strings.Contains(strings.ToLower(k), strings.ToLower(n)) {
				t.Errorf("key %q contains %q", k, n)
			}
		}
	}
}

func BenchmarkDepositCommit10KB(b *testing.B) {
	v, _ := newVault(b)
	ctx := context.Background()
	body := make([]byte, 10<<10)
	env := archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com"}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		at := time.Now()
		d, err := v.Begin(ctx, archive.NewID(at))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Write(body); err != nil {
			b.Fatal(err)
		}
		h := v.Fingerprint(env)
		fmt.Fprint(h, i)
		h.Write(body)
		_, dup, err := d.Commit(ctx, archive.Record{
			Envelope: env, ReceivedAt: at, Meta: map[string]string{"mv-version": "1"},
			Manifest: body[:512], Fingerprint: h.Sum(nil),
		})
		if err != nil || dup {
			b.Fatal(dup, err)
		}
	}
}

// TestCrashBeforeMessageLeavesNothingBehind: a delivery killed after it
// claimed the marker and wrote the manifest, but before its message landed,
// leaves a marker whose message is missing. Postfix's retry of the same
// message must archive it exactly once and remove what the dead one left.
func TestCrashBeforeMessageLeavesNothingBehind(t *testing.T) {
	v, s := newVault(t)
	ctx := context.Background()
	m := message{env: archive.Envelope{From: "alice@example.com", To: []string{"bob@example.com"}}, at: t0, body: "killed"}
	dead := archive.NewID(t0)
	fpKey := "fp/" + hex.EncodeToString(fingerprint(v, m))
	for key, data := range map[string][]byte{fpKey: []byte(dead), "msg/" + dead + ".manifest": sealed("manifest")} {
		w, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Commit(ctx, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	retry := m
	retry.at = t0.Add(time.Minute)
	id, dup, _ := deposit(t, v, retry)
	if dup || id == dead {
		t.Fatalf("retry answered %q (duplicate %v), want a new archive entry", id, dup)
	}
	var msgs []string
	for _, k := range allKeys(t, s) {
		if strings.HasPrefix(k, "msg/") {
			msgs = append(msgs, k)
		}
	}
	if want := []string{"msg/" + id, "msg/" + id + ".manifest"}; !slices.Equal(msgs, want) {
		t.Errorf("msg/ objects after the retry = %q, want %q", msgs, want)
	}
	// And a crash after the message landed but before the index: the
	// retry finds the message and completes its index.
	entries, _, err := v.List(ctx, "bob@example.com", time.Time{}, time.Time{}, 10, "")
	if err != nil || len(entries) != 1 || entries[0].ID != id {
		t.Fatalf("listing after the retry: %v %v", entries, err)
	}
	for _, k := range allKeys(t, s) {
		if strings.HasPrefix(k, "idx/") || strings.HasPrefix(k, "all/") {
			s.Delete(ctx, k)
		}
	}
	again := m
	again.at = t0.Add(2 * time.Minute)
	if id2, dup, _ := deposit(t, v, again); !dup || id2 != id {
		t.Fatalf("second retry answered %q (duplicate %v), want duplicate of %q", id2, dup, id)
	}
	if entries, _, _ := v.List(ctx, "bob@example.com", time.Time{}, time.Time{}, 10, ""); len(entries) != 1 {
		t.Errorf("index not completed by the retry: %v", entries)
	}
}

func newFSStore(t *testing.T) *fsstore.Store {
	t.Helper()
	s, err := fsstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
