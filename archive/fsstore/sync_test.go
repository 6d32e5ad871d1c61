package fsstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// holdSyncs replaces the directory fsync for the test: every call is
// counted, and the first one blocks until release is closed.
func holdSyncs(t *testing.T, fail error) (calls *atomic.Int32, firstStarted <-chan struct{}, release chan struct{}) {
	calls = new(atomic.Int32)
	started := make(chan struct{})
	release = make(chan struct{})
	var once sync.Once
	fsyncDirHook = func(dir string) error {
		calls.Add(1)
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			<-release
			return nil
		}
		return fail
	}
	t.Cleanup(func() { fsyncDirHook = fsyncDir })
	return calls, started, release
}

// waitJoined waits until n callers have joined dir's next sync round.
func waitJoined(s *Store, dir string, n int) {
	for {
		s.dirs.mu.Lock()
		d := s.dirs.m[dir]
		s.dirs.mu.Unlock()
		joined := 0
		if d != nil {
			d.mu.Lock()
			if d.next != nil {
				joined = d.next.joined
			}
			d.mu.Unlock()
		}
		if joined == n {
			return
		}
		runtime.Gosched()
	}
}

// TestSyncDirGroupCommit: callers arriving while a directory sync runs do
// not count on it (it may have begun before their rename); they wait for it
// and share one more, whose result each of them gets.
func TestSyncDirGroupCommit(t *testing.T) {
	for _, fail := range []error{nil, errors.New("injected: EIO")} {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		calls, started, release := holdSyncs(t, fail)
		dir := s.objects
		first := make(chan error)
		go func() { first <- s.syncDir(dir) }()
		<-started // the first round's fsync is running

		const n = 16
		errs := make(chan error, n)
		for range n {
			go func() { errs <- s.syncDir(dir) }()
		}
		waitJoined(s, dir, n)
		if c := calls.Load(); c != 1 {
			t.Fatalf("%d fsyncs while the first was held, want 1", c)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("first caller: %v", err)
		}
		for range n {
			if err := <-errs; !errors.Is(err, fail) {
				t.Errorf("joined caller got %v, want %v", err, fail)
			}
		}
		if c := calls.Load(); c != 2 {
			t.Errorf("%d callers arriving during a sync took %d more fsyncs, want 1", n, c-1)
		}
		s.dirs.mu.Lock()
		left := len(s.dirs.m)
		s.dirs.mu.Unlock()
		if left != 0 {
			t.Errorf("%d directories' sync state kept after every caller returned", left)
		}
		fsyncDirHook = fsyncDir
	}
}

// TestEmptyObjectFile: an empty object without metadata is an empty file,
// committed without a file sync; with metadata it keeps its trailer.
func TestEmptyObjectFile(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string, meta map[string]string) {
		w, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, meta, false); err != nil {
			t.Fatal(err)
		}
	}
	put("idx/h/entry", nil)
	put("idx/h/with-meta", map[string]string{"k": "v"})
	for key, wantSize := range map[string]int64{"idx/h/entry": 0, "idx/h/with-meta": int64(len(`{"k":"v"}`)) + fsTrailerSize} {
		st, err := os.Stat(filepath.Join(s.objects, filepath.FromSlash(key)) + fsObjectSuffix)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != wantSize {
			t.Errorf("%s: file of %d bytes, want %d", key, st.Size(), wantSize)
		}
	}
	info, err := s.Head(ctx, "idx/h/entry")
	if err != nil || info.Size != 0 || len(info.Metadata) != 0 || info.Metadata == nil {
		t.Errorf("head of an empty object: %+v, %v", info, err)
	}
	if info, err := s.Head(ctx, "idx/h/with-meta"); err != nil || info.Size != 0 || info.Metadata["k"] != "v" {
		t.Errorf("head of an empty object with metadata: %+v, %v", info, err)
	}
	page, err := s.List(ctx, "idx/h/", "", 10)
	if err != nil || len(page) != 2 || page[0].Key != "idx/h/entry" || page[0].Size != 0 {
		t.Errorf("list: %+v, %v", page, err)
	}
	rc, err := s.Get(ctx, "idx/h/entry", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, _ := rc.Read(buf); n != 0 {
		t.Errorf("read %d bytes from an empty object", n)
	}
	rc.Close()
}
