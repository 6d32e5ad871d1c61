// Package storetest is the conformance suite for archive.Store backends: the
// fs store runs it against a temporary directory, the s3 store against a real
// MinIO. It tests only what the Store contract promises, so it holds for any
// backend.
//
// The contract, as tested here, beyond the interface's doc comments:
//
//   - Get: a range reaching past the end returns what exists; one starting
//     at or past the end returns no bytes (not an error); n == 0 returns no
//     bytes. A negative offset is an error. A missing key is ErrNotFound,
//     also for n == 0.
//   - Head: Metadata round-trips exactly (values of printable ASCII, as
//     archive.ValidateMetadata allows); no metadata reads back as an empty
//     (or nil) map.
//   - List: keys in byte order; a page shorter than limit means there are
//     no more keys. An object "a" beside objects under "a/" is not required
//     (MinIO does not list them; the Vault never makes such a pair).
//   - Commit without IfAbsent replaces; with IfAbsent, exactly one of any
//     number of concurrent committers wins and the others get ErrExists.
//   - Keys that archive.ValidateKey rejects are rejected by every method.
//
// This package never decrypts anything; objects hold arbitrary bytes.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
)

// Run runs the suite. newStore must return a new, empty store each time it
// is called (for S3: a fresh bucket or prefix); it may register clean-up with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) archive.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s archive.Store)
	}{
		{"CommitGetHead", testCommitGetHead},
		{"EmptyObject", testEmptyObject},
		{"LargeObject", testLargeObject},
		{"Metadata", testMetadata},
		{"NoMetadata", testNoMetadata},
		{"Ranges", testRanges},
		{"NotFound", testNotFound},
		{"InvisibleBeforeCommit", testInvisibleBeforeCommit},
		{"Abort", testAbort},
		{"Overwrite", testOverwrite},
		{"IfAbsent", testIfAbsent},
		{"IfAbsentAfterDelete", testIfAbsentAfterDelete},
		{"ConcurrentIfAbsent", testConcurrentIfAbsent},
		{"ListOrder", testListOrder},
		{"ListPrefix", testListPrefix},
		{"ListPagination", testListPagination},
		{"ListSizes", testListSizes},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"InvalidPrefixes", testInvalidPrefixes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// put stores data under key, written in pieces of varying size.
func put(t *testing.T, s archive.Store, key string, data []byte, meta map[string]string) {
	t.Helper()
	if err := tryPut(ctxFor(t), s, key, data, meta, false); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func tryPut(ctx context.Context, s archive.Store, key string, data []byte, meta map[string]string, ifAbsent bool) error {
	w, err := s.Create(ctx, key)
	if err != nil {
		return err
	}
	for i, step := 0, 1; i < len(data); step = step*3 + 1 {
		j := min(i+step, len(data))
		if _, err := w.Write(data[i:j]); err != nil {
			w.Abort()
			return err
		}
		i = j
	}
	return w.Commit(ctx, meta, ifAbsent)
}

func get(t *testing.T, s archive.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, err := s.Get(ctxFor(t), key, off, n)
	if err != nil {
		t.Fatalf("get %s [%d,%+d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s [%d,%+d): %v", key, off, n, err)
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// keysOf lists every key under prefix, one page of limit at a time.
func keysOf(t *testing.T, s archive.Store, prefix string, limit int) []string {
	t.Helper()
	var keys []string
	after := ""
	for {
		page, err := s.List(ctxFor(t), prefix, after, limit)
		if err != nil {
			t.Fatalf("list %q after %q: %v", prefix, after, err)
		}
		if len(page) > limit {
			t.Fatalf("list %q after %q: %d entries, limit %d", prefix, after, len(page), limit)
		}
		for _, o := range page {
			keys = append(keys, o.Key)
		}
		if len(page) < limit {
			return keys
		}
		after = page[len(page)-1].Key
	}
}

func wantNotFound(t *testing.T, s archive.Store, key string) {
	t.Helper()
	ctx := ctxFor(t)
	if _, err := s.Head(ctx, key); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("head %s: err = %v, want ErrNotFound", key, err)
	}
	if rc, err := s.Get(ctx, key, 0, -1); !errors.Is(err, archive.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("get %s: err = %v, want ErrNotFound", key, err)
	}
}

func testCommitGetHead(t *testing.T, s archive.Store) {
	data := randomBytes(t, 100_000)
	meta := map[string]string{"mv-version": "1", "mv-plaintext-size": "99872"}
	put(t, s, "msg/one", data, meta)
	if got := get(t, s, "msg/one", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes differ from the %d written", len(got), len(data))
	}
	info, err := s.Head(ctxFor(t), "msg/one")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("head size = %d, want %d", info.Size, len(data))
	}
	if !maps.Equal(info.Metadata, meta) {
		t.Errorf("head metadata = %v, want %v", info.Metadata, meta)
	}
	if info.Key != "" && info.Key != "msg/one" {
		t.Errorf("head key = %q", info.Key)
	}
}

func testEmptyObject(t *testing.T, s archive.Store) {
	put(t, s, "empty", nil, nil)
	if got := get(t, s, "empty", 0, -1); len(got) != 0 {
		t.Errorf("get = %d bytes, want 0", len(got))
	}
	if got := get(t, s, "empty", 0, 10); len(got) != 0 {
		t.Errorf("get [0,+10) = %d bytes, want 0", len(got))
	}
	info, err := s.Head(ctxFor(t), "empty")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 0 {
		t.Errorf("size = %d, want 0", info.Size)
	}
}

// testLargeObject crosses the 5 MiB part size of S3 multipart uploads.
func testLargeObject(t *testing.T, s archive.Store) {
	data := randomBytes(t, 11<<20+12345)
	put(t, s, "big/object", data, map[string]string{"k": "v"})
	if got := get(t, s, "big/object", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes differ from the %d written", len(got), len(data))
	}
	off, n := int64(5<<20-7), int64(1<<20+14)
	if got := get(t, s, "big/object", off, n); !bytes.Equal(got, data[off:off+n]) {
		t.Fatal("range across a 5 MiB boundary differs")
	}
	info, err := s.Head(ctxFor(t), "big/object")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("size = %d, want %d", info.Size, len(data))
	}
}

func testMetadata(t *testing.T, s archive.Store) {
	meta := map[string]string{
		"mv-version":        "1",
		"mv-provider":       "awskms",
		"mv-key-id":         "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"mv-wrapped-key":    "AQIDAHhB+/x9Zz0kq3Gd/+abc==",
		"mv-context":        `{"mailvaultd:archive-id":"0abc","x":["a","b"],"q":"\"quoted\" \\ back"}`,
		"mv-plaintext-size": "1234567890123",
		"mv-received-at":    "2026-11-23T11:52:00.123456789Z",
		"mv-odd":            "a  b c ~!@#$%^&*()_+=[]{}|;:',.<>/?`",
		"x":                 "y",
	}
	put(t, s, "meta/obj", []byte("x"), meta)
	info, err := s.Head(ctxFor(t), "meta/obj")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range meta {
		if got, ok := info.Metadata[k]; !ok || got != want {
			t.Errorf("metadata %s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if len(info.Metadata) != len(meta) {
		t.Errorf("metadata has %d keys, want %d: %v", len(info.Metadata), len(meta), info.Metadata)
	}
}

func testNoMetadata(t *testing.T, s archive.Store) {
	put(t, s, "nometa", []byte("abc"), nil)
	info, err := s.Head(ctxFor(t), "nometa")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Metadata) != 0 {
		t.Errorf("metadata = %v, want none", info.Metadata)
	}
}

func testRanges(t *testing.T, s archive.Store) {
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i*7 + i/256)
	}
	put(t, s, "ranges", data, nil)
	size := int64(len(data))
	for _, tc := range []struct{ off, n int64 }{
		{0, -1}, {0, 0}, {0, 1}, {0, size}, {0, size + 1}, {0, 1 << 40},
		{1, -1}, {10, 20}, {999, 1}, {999, -1}, {999, 5},
		{990, 20}, {500, 500}, {500, 501},
		{size, -1}, {size, 0}, {size, 10}, {size + 1, 10}, {5000, -1}, {1 << 40, 1},
	} {
		want := data[min(tc.off, size):]
		if tc.n >= 0 && tc.n < int64(len(want)) {
			want = want[:tc.n]
		}
		if got := get(t, s, "ranges", tc.off, tc.n); !bytes.Equal(got, want) {
			t.Errorf("get [%d,%+d): %d bytes, want %d (or wrong bytes)", tc.off, tc.n, len(got), len(want))
		}
	}
	if rc, err := s.Get(ctxFor(t), "ranges", -1, 10); err == nil {
		rc.Close()
		t.Error("get at offset -1: no error")
	}
}

func testNotFound(t *testing.T, s archive.Store) {
	wantNotFound(t, s, "missing")
	wantNotFound(t, s, "missing/deep/key")
	put(t, s, "dir/present", []byte("x"), nil)
	wantNotFound(t, s, "dir") // a prefix is not an object
	wantNotFound(t, s, "dir/presen")
	if rc, err := s.Get(ctxFor(t), "missing", 0, 0); !errors.Is(err, archive.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("get missing [0,+0): err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctxFor(t), "missing"); err != nil {
		t.Errorf("delete missing: %v", err)
	}
}

func testInvisibleBeforeCommit(t *testing.T, s archive.Store) {
	ctx := ctxFor(t)
	w, err := s.Create(ctx, "pending/obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(t, 70_000)); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "pending/obj")
	if keys := keysOf(t, s, "", 100); len(keys) != 0 {
		t.Errorf("list before commit = %v, want nothing", keys)
	}
	if err := w.Commit(ctx, map[string]string{"a": "b"}, false); err != nil {
		t.Fatal(err)
	}
	if keys := keysOf(t, s, "", 100); !slices.Equal(keys, []string{"pending/obj"}) {
		t.Errorf("list after commit = %v", keys)
	}
}

func testAbort(t *testing.T, s archive.Store) {
	ctx := ctxFor(t)
	w, err := s.Create(ctx, "aborted/obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(t, 70_000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("abort: %v", err)
	}
	wantNotFound(t, s, "aborted/obj")
	if keys := keysOf(t, s, "", 100); len(keys) != 0 {
		t.Errorf("list after abort = %v, want nothing", keys)
	}
	// Aborting does not spoil the key.
	put(t, s, "aborted/obj", []byte("later"), nil)
	if got := get(t, s, "aborted/obj", 0, -1); string(got) != "later" {
		t.Errorf("get = %q", got)
	}
	// Nor an existing object.
	w, err = s.Create(ctx, "aborted/obj")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("never"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "aborted/obj", 0, -1); string(got) != "later" {
		t.Errorf("get after aborted overwrite = %q, want %q", got, "later")
	}
}

func testOverwrite(t *testing.T, s archive.Store) {
	put(t, s, "k", []byte("first"), map[string]string{"a": "1", "b": "2"})
	put(t, s, "k", []byte("second, longer"), map[string]string{"a": "3"})
	if got := get(t, s, "k", 0, -1); string(got) != "second, longer" {
		t.Errorf("get = %q", got)
	}
	info, err := s.Head(ctxFor(t), "k")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "3"}; !maps.Equal(info.Metadata, want) {
		t.Errorf("metadata = %v, want %v", info.Metadata, want)
	}
	if keys := keysOf(t, s, "", 10); !slices.Equal(keys, []string{"k"}) {
		t.Errorf("list = %v", keys)
	}
}

func testIfAbsent(t *testing.T, s archive.Store) {
	ctx := ctxFor(t)
	if err := tryPut(ctx, s, "fp/abc", []byte("winner"), map[string]string{"w": "1"}, true); err != nil {
		t.Fatalf("first ifAbsent commit: %v", err)
	}
	err := tryPut(ctx, s, "fp/abc", []byte("loser"), map[string]string{"w": "2"}, true)
	if !errors.Is(err, archive.ErrExists) {
		t.Fatalf("second ifAbsent commit: err = %v, want ErrExists", err)
	}
	if got := get(t, s, "fp/abc", 0, -1); string(got) != "winner" {
		t.Errorf("get = %q, want the first", got)
	}
	info, err := s.Head(ctx, "fp/abc")
	if err != nil {
		t.Fatal(err)
	}
	if info.Metadata["w"] != "1" {
		t.Errorf("metadata = %v, want the first", info.Metadata)
	}
	if keys := keysOf(t, s, "", 10); !slices.Equal(keys, []string{"fp/abc"}) {
		t.Errorf("list = %v", keys)
	}
}

func testIfAbsentAfterDelete(t *testing.T, s archive.Store) {
	ctx := ctxFor(t)
	if err := tryPut(ctx, s, "once", []byte("1"), nil, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	if err := tryPut(ctx, s, "once", []byte("2"), nil, true); err != nil {
		t.Fatalf("ifAbsent after delete: %v", err)
	}
	if got := get(t, s, "once", 0, -1); string(got) != "2" {
		t.Errorf("get = %q", got)
	}
}

// testConcurrentIfAbsent races IfAbsent commits of one key, several rounds
// over fresh keys: a backend that checks and then writes loses some round.
func testConcurrentIfAbsent(t *testing.T, s archive.Store) {
	const writers, rounds = 24, 40
	ctx := ctxFor(t)
	var want []string
	for round := range rounds {
		key := fmt.Sprintf("race/%02d", round)
		want = append(want, key)
		// Every writer has its data written before any commits, so the
		// commits race as closely as they can.
		ws := make([]archive.ObjectWriter, writers)
		for i := range ws {
			w, err := s.Create(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fmt.Fprintf(w, "writer %d", i); err != nil {
				t.Fatal(err)
			}
			ws[i] = w
		}
		errs := make([]error, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, w := range ws {
			wg.Go(func() {
				<-start
				errs[i] = w.Commit(ctx, map[string]string{"writer": fmt.Sprint(i)}, true)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("%s: writers %d and %d both won", key, winner, i)
				}
				winner = i
			case !errors.Is(err, archive.ErrExists):
				t.Errorf("%s: writer %d: err = %v, want nil or ErrExists", key, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no writer won", key)
		}
		if got, want := string(get(t, s, key, 0, -1)), fmt.Sprintf("writer %d", winner); got != want {
			t.Errorf("%s: content = %q, want the winner's %q", key, got, want)
		}
		info, err := s.Head(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Metadata["writer"]; got != fmt.Sprint(winner) {
			t.Errorf("%s: metadata writer = %q, want %d", key, got, winner)
		}
	}
	if keys := keysOf(t, s, "", 100); !slices.Equal(keys, want) {
		t.Errorf("list = %v", keys)
	}
}

// orderKeys are in byte order; they straddle '-' < '.' < '/' < '0' < '_' <
// 'a' at every level. None is also the "directory" of another (as "a" and
// "a/b" would be): MinIO does not list such pairs, and the Vault never
// makes one.
var orderKeys = []string{
	"a-b",
	"a.b",
	"a.c/d",
	"a/b-c",
	"a/b/c/d",
	"a/b0",
	"a0",
	"a_",
	"aa",
	"ab/c",
	"b",
	"idx/0f/1-x",
	"idx/0f/2-x",
	"idx/0f0/1-x",
	"idx/1/1-x",
	"z.9/y_8/x-7",
}

func testListOrder(t *testing.T, s archive.Store) {
	// Store them in a scrambled order.
	for i := range orderKeys {
		k := orderKeys[(i*7)%len(orderKeys)]
		put(t, s, k, []byte(k), nil)
	}
	for _, limit := range []int{1, 2, 3, 5, 100, 1000} {
		if got := keysOf(t, s, "", limit); !slices.Equal(got, orderKeys) {
			t.Errorf("list with limit %d:\n got %q\nwant %q", limit, got, orderKeys)
		}
	}
	for _, k := range orderKeys {
		if got := get(t, s, k, 0, -1); string(got) != k {
			t.Errorf("get %s = %q", k, got)
		}
	}
}

func testListPrefix(t *testing.T, s archive.Store) {
	for _, k := range orderKeys {
		put(t, s, k, []byte(k), nil)
	}
	for _, prefix := range []string{"", "a", "a/", "a/b", "a/b/", "a/b/c/", "a.", "a.c/", "a.b", "ab", "idx/", "idx/0f", "idx/0f/", "idx/0f/2", "z.9/y_8/", "zz", "q/", "a/b/c/d", "a/b/c/d/"} {
		var want []string
		for _, k := range orderKeys {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				want = append(want, k)
			}
		}
		for _, limit := range []int{1, 2, 1000} {
			if got := keysOf(t, s, prefix, limit); !slices.Equal(got, want) {
				t.Errorf("list %q limit %d:\n got %q\nwant %q", prefix, limit, got, want)
			}
		}
	}
}

func testListPagination(t *testing.T, s archive.Store) {
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("p/%02d", i))
	}
	for _, k := range keys {
		put(t, s, k, nil, nil)
	}
	put(t, s, "o/before", nil, nil)
	put(t, s, "q/after", nil, nil)
	ctx := ctxFor(t)
	for _, tc := range []struct {
		startAfter string
		limit      int
		want       []string
	}{
		{"", 5, keys[:5]},
		{"", 25, keys},
		{"", 26, keys},
		{"", 1000, keys},
		{"p/04", 5, keys[5:10]},
		{"p/04", 100, keys[5:]},
		{"p/045", 2, keys[5:7]}, // not a key: starts after where it would be
		{"p/0", 3, keys[:3]},
		{"p/", 1, keys[:1]},
		{"o", 1, keys[:1]}, // before the prefix
		{"p/24", 10, nil},
		{"p/99", 10, nil},
		{"q", 10, nil}, // after the prefix
	} {
		page, err := s.List(ctx, "p/", tc.startAfter, tc.limit)
		if err != nil {
			t.Fatalf("list after %q: %v", tc.startAfter, err)
		}
		var got []string
		for _, o := range page {
			got = append(got, o.Key)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("list p/ after %q limit %d:\n got %q\nwant %q", tc.startAfter, tc.limit, got, tc.want)
		}
	}
	// Walking the pages of every size gives every key once.
	for limit := 1; limit <= 26; limit++ {
		if got := keysOf(t, s, "p/", limit); !slices.Equal(got, keys) {
			t.Errorf("pages of %d: got %q", limit, got)
		}
	}
}

func testListSizes(t *testing.T, s archive.Store) {
	sizes := map[string]int{"s/a": 0, "s/b": 1, "s/c": 4096, "s/d": 70_001}
	for k, n := range sizes {
		put(t, s, k, randomBytes(t, n), map[string]string{"x": "y"})
	}
	page, err := s.List(ctxFor(t), "s/", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != len(sizes) {
		t.Fatalf("list = %d entries, want %d", len(page), len(sizes))
	}
	for _, o := range page {
		if o.Size != int64(sizes[o.Key]) {
			t.Errorf("list size of %s = %d, want %d", o.Key, o.Size, sizes[o.Key])
		}
	}
}

func testDelete(t *testing.T, s archive.Store) {
	ctx := ctxFor(t)
	put(t, s, "d/one", []byte("1"), nil)
	put(t, s, "d/two", []byte("2"), nil)
	put(t, s, "d/sub/three", []byte("3"), nil)
	if err := s.Delete(ctx, "d/one"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "d/one")
	if err := s.Delete(ctx, "d/one"); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := s.Delete(ctx, "d/sub/three"); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, s, "", 10); !slices.Equal(got, []string{"d/two"}) {
		t.Errorf("list = %q, want [d/two]", got)
	}
	if got := get(t, s, "d/two", 0, -1); string(got) != "2" {
		t.Errorf("get d/two = %q", got)
	}
	// The key can be used again, also under a deleted "directory".
	put(t, s, "d/one", []byte("again"), nil)
	put(t, s, "d/sub/three", []byte("again"), nil)
	if got := keysOf(t, s, "", 10); !slices.Equal(got, []string{"d/one", "d/sub/three", "d/two"}) {
		t.Errorf("list = %q", got)
	}
}

// InvalidKeys are keys every backend must reject (archive.ValidateKey).
var InvalidKeys = []string{
	"",
	"/",
	"/abs",
	"/etc/passwd",
	"..",
	"../x",
	"a/../../x",
	"a/..",
	".",
	"./a",
	"a/./b",
	"a//b",
	"a/",
	"A",
	"msg/ABC",
	"a b",
	"a\\b",
	"..\\x",
	"%2e%2e/x",
	"msg/%2e%2e",
	"caf\u00e9",
	"\u2215etc",
	"a\x00b",
	"a\nb",
	"a~",
	"a:b",
	string(make([]byte, archive.MaxKeyBytes+1)),
}

func testInvalidKeys(t *testing.T, s archive.Store) {
	ctx := ctxFor(t)
	long := ""
	for len(long) <= archive.MaxKeyBytes {
		long += "abcdefgh/"
	}
	for _, key := range append(slices.Clone(InvalidKeys), long+"x") {
		if w, err := s.Create(ctx, key); err == nil {
			w.Abort()
			t.Errorf("create %q: no error", key)
		}
		if rc, err := s.Get(ctx, key, 0, -1); err == nil || errors.Is(err, archive.ErrNotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("get %q: err = %v, want an invalid-key error", key, err)
		}
		if _, err := s.Head(ctx, key); err == nil || errors.Is(err, archive.ErrNotFound) {
			t.Errorf("head %q: err = %v, want an invalid-key error", key, err)
		}
		if err := s.Delete(ctx, key); err == nil {
			t.Errorf("delete %q: no error", key)
		}
	}
	if keys := keysOf(t, s, "", 100); len(keys) != 0 {
		t.Errorf("store holds %q after invalid keys", keys)
	}
}

// testInvalidPrefixes checks that every backend refuses the same malformed
// List prefixes (a complete segment that is empty, "." or "..", or a byte
// outside the key alphabet), so that what lists on fs lists on s3.
func testInvalidPrefixes(t *testing.T, s archive.Store) {
	put(t, s, "a/b", []byte("x"), nil)
	for _, prefix := range []string{"a//", "//", "/a", "./", "../", "a/../", "a/./b", "A/", "a b", "a\x00", "\xff/"} {
		if _, err := s.List(ctxFor(t), prefix, "", 10); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("list %q: %v, want ErrInvalidKey", prefix, err)
		}
	}
}
