package fsstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/archive/storetest"
)

func newFSStore(t *testing.T) *fsstore.Store {
	t.Helper()
	s, err := fsstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFSStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) archive.Store { return newFSStore(t) })
}

// tree lists every path under root (relative, '/'-separated), directories
// with a trailing '/'.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func putFS(t *testing.T, s archive.Store, key string, data []byte, meta map[string]string, ifAbsent bool) error {
	t.Helper()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(context.Background(), meta, ifAbsent)
}

// TestFSStoreKeyValidation checks that no key reaches outside the store's
// directory: every method rejects it, and the directory tree around the
// store is unchanged afterwards.
func TestFSStoreKeyValidation(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Bait: files a traversal would reach.
	if err := os.MkdirAll(filepath.Join(base, "outside"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"secret~", "outside/x~", "secret", "store/secret~"} {
		if err := os.WriteFile(filepath.Join(base, p), []byte("bait"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, base)

	ctx := context.Background()
	keys := append(slices.Clone(storetest.InvalidKeys),
		"../secret", "../../secret", "../outside/x", "objects/../../secret", "../store/secret",
		"tmp/../../secret", "..%2fsecret", "%2e%2e%2fsecret", "\u002e\u002e/secret",
		"\uff0e\uff0e/secret", "msg/\u0430", "a/\x7f", strings.Repeat("a", 201), "a/"+strings.Repeat("b", 201))
	for _, key := range keys {
		if w, err := s.Create(ctx, key); err == nil {
			w.Write([]byte("escaped"))
			w.Commit(ctx, nil, false)
			t.Errorf("create %q: no error", key)
		} else if !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("create %q: err = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Get(ctx, key, 0, -1); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("get %q: err = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Head(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("head %q: err = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("delete %q: err = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, prefix := range []string{"../", "/", "/etc/", "a//", "../outside/", "A", "caf\u00e9", "./", "a/../"} {
		if _, err := s.List(ctx, prefix, "", 10); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("list %q: err = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if after := tree(t, base); !slices.Equal(after, before) {
		t.Errorf("tree changed:\nbefore %q\n after %q", before, after)
	}
	for _, p := range []string{"secret~", "outside/x~", "secret", "store/secret~"} {
		if b, err := os.ReadFile(filepath.Join(base, p)); err != nil || string(b) != "bait" {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"objects/", "secret~", "tmp/"}) {
		t.Errorf("store tree = %q", got)
	}
}

func TestFSStoreLayoutAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"msg/abc", "msg/abc.manifest", "a", "a/b"} {
		if err := putFS(t, s, k, []byte(k), nil, false); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"objects/", "objects/a/", "objects/a/b~", "objects/a~", "objects/msg/", "objects/msg/abc.manifest~", "objects/msg/abc~", "tmp/"}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Errorf("tree = %q\nwant %q", got, want)
	}
	// Unlike MinIO, an object "a" and the objects under "a/" are listed side
	// by side, as S3 does.
	for _, limit := range []int{1, 2, 10} {
		var keys []string
		after := ""
		for {
			page, err := s.List(context.Background(), "", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page {
				keys = append(keys, o.Key)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Key
		}
		if want := []string{"a", "a/b", "msg/abc", "msg/abc.manifest"}; !slices.Equal(keys, want) {
			t.Errorf("limit %d: list = %q, want %q", limit, keys, want)
		}
	}
	if page, err := s.List(context.Background(), "a", "", 10); err != nil || len(page) != 2 {
		t.Errorf("list a = %v, %v", page, err)
	}
	for _, p := range []string{"", "objects", "objects/msg", "tmp"} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if m := st.Mode().Perm(); m != 0o700 {
			t.Errorf("%s/: mode %o, want 700", p, m)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "objects/msg/abc~"))
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("object file mode %o, want 600", m)
	}
}

func TestFSStoreOrphanCleanup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A writer that never finishes (the process "crashed").
	w, err := s.Create(ctx, "msg/crashed")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("x"), 100_000))
	_ = w // never committed nor aborted
	tmp := filepath.Join(dir, "tmp")
	old := filepath.Join(tmp, "obj-old")
	if err := os.WriteFile(old, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	two := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, two, two); err != nil {
		t.Fatal(err)
	}

	s2, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan older than an hour still there: %v", err)
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 1 {
		t.Errorf("tmp holds %d files, want the young one only", len(ents))
	}
	if _, err := s2.Head(ctx, "msg/crashed"); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("uncommitted object after restart: %v, want ErrNotFound", err)
	}
	if page, _ := s2.List(ctx, "", "", 10); len(page) != 0 {
		t.Errorf("list after restart = %v", page)
	}
	// An hour later it goes too.
	for _, e := range ents {
		p := filepath.Join(tmp, e.Name())
		os.Chtimes(p, two, two)
	}
	if _, err := fsstore.New(dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("tmp holds %d files after the second restart", len(ents))
	}
}

func TestFSStoreTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tmpCount := func() int {
		ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	w, err := s.Create(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if n := tmpCount(); n != 1 {
		t.Errorf("while writing: %d temp files, want 1", n)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := tmpCount(); n != 0 {
		t.Errorf("after abort: %d temp files", n)
	}
	if err := putFS(t, s, "k", []byte("1"), nil, true); err != nil {
		t.Fatal(err)
	}
	if err := putFS(t, s, "k", []byte("2"), nil, true); !errors.Is(err, archive.ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if err := putFS(t, s, "k", []byte("3"), map[string]string{"BAD": "x"}, false); !errors.Is(err, archive.ErrInvalidMetadata) {
		t.Fatalf("err = %v, want ErrInvalidMetadata", err)
	}
	if n := tmpCount(); n != 0 {
		t.Errorf("after commits: %d temp files", n)
	}
}

func TestFSStoreWriterStates(t *testing.T) {
	s := newFSStore(t)
	ctx := context.Background()
	w, err := s.Create(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Commit(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("abort after commit: %v", err)
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Error("write after commit: no error")
	}
	if err := w.Commit(ctx, nil, false); err == nil {
		t.Error("second commit: no error")
	}
	if b, _ := io.ReadAll(must(s.Get(ctx, "k", 0, -1))); string(b) != "x" {
		t.Errorf("content = %q", b)
	}

	w, err = s.Create(ctx, "k2")
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if err := w.Abort(); err != nil {
		t.Errorf("second abort: %v", err)
	}
	if err := w.Commit(ctx, nil, false); err == nil {
		t.Error("commit after abort: no error")
	}
	if _, err := s.Head(ctx, "k2"); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("head after abort: %v", err)
	}

	// A cancelled context fails the commit and leaves nothing.
	w, err = s.Create(ctx, "k3")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.Commit(cctx, nil, false); !errors.Is(err, context.Canceled) {
		t.Errorf("commit with cancelled context: %v", err)
	}
	if _, err := s.Head(ctx, "k3"); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("head after cancelled commit: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestFSStoreMetadataRules(t *testing.T) {
	s := newFSStore(t)
	for _, meta := range []map[string]string{
		{"Upper": "x"},
		{"under_score": "x"},
		{"": "x"},
		{"k": "caf\u00e9"},
		{"k": "line\nbreak"},
		{"k": "tab\there"},
		{"k": " leading"},
		{"k": "trailing "},
		{"k": strings.Repeat("v", archive.MaxMetadataBytes)},
	} {
		if err := putFS(t, s, "k", []byte("x"), meta, false); !errors.Is(err, archive.ErrInvalidMetadata) {
			t.Errorf("metadata %q: err = %v, want ErrInvalidMetadata", meta, err)
		}
	}
	if page, _ := s.List(context.Background(), "", "", 10); len(page) != 0 {
		t.Errorf("list = %v", page)
	}
	ok := map[string]string{"k": strings.Repeat("v", archive.MaxMetadataBytes-2), "e": ""}
	if err := putFS(t, s, "k", []byte("x"), ok, false); err != nil {
		t.Errorf("metadata of exactly the limit: %v", err)
	}
}

func TestFSStoreCorruptObject(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, content := range map[string]string{
		"short":    "abc",
		"magic":    strings.Repeat("x", 40),
		"metalen":  "data" + "\xff\xff\xff\xff\xff\xff\xff\xff" + "mvobj\x00v1",
		"metajson": "data{nope" + "\x00\x00\x00\x00\x00\x00\x00\x05" + "mvobj\x00v1",
	} {
		if err := os.WriteFile(filepath.Join(dir, "objects", name+"~"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Head(ctx, name); err == nil || errors.Is(err, archive.ErrNotFound) {
			t.Errorf("head %s: err = %v, want a corruption error", name, err)
		}
	}
	if _, err := s.Get(ctx, "short", 0, -1); err == nil || errors.Is(err, archive.ErrNotFound) {
		t.Errorf("get corrupt: err = %v", err)
	}
}

func TestFSStorePing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("ping left %d files", len(ents))
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("ping of a removed directory: no error")
	}
}

// TestFSStoreListLargeDirectory lists pages of a directory much larger than
// the page, and a tree with many empty directories (left by Delete), which
// makes the lister read a directory again to fill a page.
func TestFSStoreListLargeDirectory(t *testing.T) {
	s := newFSStore(t)
	ctx := context.Background()
	var keys []string
	for i := range 1500 {
		keys = append(keys, fmt.Sprintf("all/%05d", (i*7919)%1500))
	}
	for _, k := range keys {
		if err := putFS(t, s, k, nil, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keys)
	page, err := s.List(ctx, "all/", "all/00700", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range page {
		got = append(got, o.Key)
	}
	if !slices.Equal(got, keys[701:711]) {
		t.Errorf("page = %q, want %q", got, keys[701:711])
	}
	if page, _ := s.List(ctx, "all/", "", 0); len(page) != 1000 {
		t.Errorf("limit 0 gave %d entries, want 1000", len(page))
	}

	for i := range 60 {
		if err := putFS(t, s, fmt.Sprintf("e/%02d/x", i), nil, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		if i%10 != 9 {
			if err := s.Delete(ctx, fmt.Sprintf("e/%02d/x", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{"e/09/x", "e/19/x", "e/29/x", "e/39/x", "e/49/x", "e/59/x"}
	for _, limit := range []int{1, 2, 4, 6, 7} {
		var got []string
		after := ""
		for {
			page, err := s.List(ctx, "e/", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page {
				got = append(got, o.Key)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Key
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %q", limit, got)
		}
	}
}

// TestFSStoreReadWhileReplaced: a reader keeps reading the object it opened
// while the key is replaced.
func TestFSStoreReadWhileReplaced(t *testing.T) {
	s := newFSStore(t)
	ctx := context.Background()
	old := bytes.Repeat([]byte("o"), 100_000)
	if err := putFS(t, s, "k", old, nil, false); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := putFS(t, s, "k", []byte("new"), nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(b, old) {
		t.Errorf("read %d bytes, %v; want the old object", len(b), err)
	}
}
