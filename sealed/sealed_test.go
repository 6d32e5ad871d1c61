package sealed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealer"
)

// recordingKeys wraps a real keyring and keeps every plaintext key it hands
// out, so that a test can check each was cleared; it fails on demand.
type recordingKeys struct {
	sealer.KeyProvider
	mu   sync.Mutex
	keys [][]byte
	fail error
}

func (k *recordingKeys) GenerateDataKey(ctx context.Context, c map[string]string) (*sealer.DataKey, error) {
	if k.fail != nil {
		return nil, k.fail
	}
	dk, err := k.KeyProvider.GenerateDataKey(ctx, c)
	if err == nil {
		k.mu.Lock()
		k.keys = append(k.keys, dk.Plaintext)
		k.mu.Unlock()
	}
	return dk, err
}

func (k *recordingKeys) Decrypt(ctx context.Context, keyID string, wrapped []byte, c map[string]string) ([]byte, error) {
	pt, err := k.KeyProvider.Decrypt(ctx, keyID, wrapped, c)
	if err == nil {
		k.mu.Lock()
		k.keys = append(k.keys, pt)
		k.mu.Unlock()
	}
	return pt, err
}

// uncleared returns how many handed-out keys still hold a non-zero byte.
func (k *recordingKeys) uncleared() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, key := range k.keys {
		if !bytes.Equal(key, make([]byte, len(key))) {
			n++
		}
	}
	return n
}

// failingStore wraps a real store and fails Create on demand.
type failingStore struct {
	archive.Store
	create error
}

func (s *failingStore) Create(ctx context.Context, key string) (archive.ObjectWriter, error) {
	if s.create != nil {
		return nil, s.create
	}
	return s.Store.Create(ctx, key)
}

type env struct {
	v     *archive.Vault
	keys  *recordingKeys
	store *failingStore
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	kr := filepath.Join(dir, "keyring.json")
	if err := sealer.InitKeyring(kr); err != nil {
		t.Fatal(err)
	}
	keys, err := sealer.LoadKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsstore.New(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	s := &failingStore{Store: fs}
	return &env{v: archive.NewVault(s, keys.IndexKey()), keys: &recordingKeys{KeyProvider: keys}, store: s}
}

var testEnvelope = archive.Envelope{From: "a@example.test", To: []string{"b@example.test", "c@example.test"}}

// seal archives raw as the delivery core does and returns the writer.
func (e *env) seal(t *testing.T, raw []byte, at time.Time) (*Writer, string, bool) {
	t.Helper()
	ctx := context.Background()
	w, err := Begin(ctx, e.v, e.keys, archive.NewID(at))
	if err != nil {
		t.Fatal(err)
	}
	fp := e.v.Fingerprint(testEnvelope)
	scan := partmap.NewScanner(partmap.Limits{})
	// Odd-sized writes, so chunk boundaries fall inside them.
	for rest := raw; len(rest) > 0; {
		n := min(len(rest), 7919)
		fp.Write(rest[:n])
		scan.Write(rest[:n])
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	id, dup, err := w.Commit(ctx, Record{Envelope: testEnvelope, ReceivedAt: at, Parts: scan.Close(), Fingerprint: fp.Sum(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return w, id, dup
}

func testMessage(size int) []byte {
	head := []byte("From: A <a@example.test>\r\nSubject: sealed test\r\nContent-Type: text/plain\r\n\r\n")
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz.-\r\n"), size/40+1)
	return append(head, body...)[:max(size, len(head))]
}

func TestSealOpenRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	sizes := []int{80, sealer.ChunkSize - 1, sealer.ChunkSize, sealer.ChunkSize + 1, 3*sealer.ChunkSize + 5}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := newEnv(t)
			raw := testMessage(size)
			w, id, dup := e.seal(t, raw, at)
			if dup || id != w.ID() {
				t.Fatalf("Commit = %s, duplicate %v; want %s, false", id, dup, w.ID())
			}
			if m := w.Manifest(); m == nil || m.ID != id || m.Size != int64(len(raw)) || m.Header.Subject != "sealed test" {
				t.Fatalf("writer's manifest %+v", w.Manifest())
			}
			ctx := context.Background()
			msg, err := Open(ctx, e.v, e.keys, id)
			if err != nil {
				t.Fatal(err)
			}
			defer msg.Close()
			m := msg.Manifest()
			if m.ID != id || !m.ReceivedAt.Equal(at) || m.From != testEnvelope.From || len(m.To) != 2 ||
				m.Size != int64(len(raw)) || m.Header.Subject != "sealed test" || len(m.Parts) != 1 {
				t.Fatalf("opened manifest %+v", m)
			}
			if msg.Size() != int64(len(raw)) {
				t.Fatalf("Size = %d, want %d", msg.Size(), len(raw))
			}
			for _, r := range [][2]int64{{0, -1}, {int64(len(raw)) / 2, int64(len(raw)) / 4}, {int64(len(raw)) - 1, 1}, {m.Parts[0].Offset, m.Parts[0].Length}} {
				rc, err := msg.NewReader(ctx, r[0], r[1])
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				end := int64(len(raw))
				if r[1] >= 0 {
					end = r[0] + r[1]
				}
				if err != nil || !bytes.Equal(got, raw[r[0]:end]) {
					t.Fatalf("range [%d,+%d): %d bytes, %v", r[0], r[1], len(got), err)
				}
			}
			var buf bytes.Buffer
			if n, err := Copy(ctx, e.v, e.keys, id, &buf); err != nil || n != int64(len(raw)) || !bytes.Equal(buf.Bytes(), raw) {
				t.Fatalf("Copy = %d, %v", n, err)
			}
		})
	}
}

func TestDuplicateCommit(t *testing.T) {
	e := newEnv(t)
	raw := testMessage(500)
	at := time.Now()
	_, first, _ := e.seal(t, raw, at)
	w, again, dup := e.seal(t, raw, at.Add(time.Second))
	if !dup || again != first {
		t.Fatalf("second Commit = %s, duplicate %v; want %s, true", again, dup, first)
	}
	if w.Manifest() != nil {
		t.Fatal("a duplicate's writer reports a manifest it did not store")
	}
	// Undo of a duplicate must leave the original alone.
	if err := w.Undo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenManifest(context.Background(), e.v, e.keys, first); err != nil {
		t.Fatalf("original after a duplicate's Undo: %v", err)
	}
}

func TestAbortAndUndo(t *testing.T) {
	ctx := context.Background()
	t.Run("abort", func(t *testing.T) {
		e := newEnv(t)
		w, err := Begin(ctx, e.v, e.keys, archive.NewID(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(testMessage(1000))
		w.Abort()
		if _, err := Open(ctx, e.v, e.keys, w.ID()); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Open after Abort: %v, want ErrNotFound", err)
		}
		if _, _, err := w.Commit(ctx, Record{}); err == nil {
			t.Fatal("Commit after Abort succeeded")
		}
	})
	t.Run("undo with the caller's context done", func(t *testing.T) {
		e := newEnv(t)
		w, id, _ := e.seal(t, testMessage(1000), time.Now())
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := w.Undo(cctx); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, e.v, e.keys, id); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Open after Undo: %v, want ErrNotFound", err)
		}
		// The same message arrives again: archived anew, not a duplicate.
		if _, _, dup := e.seal(t, testMessage(1000), time.Now()); dup {
			t.Fatal("message archived again after Undo is a duplicate")
		}
	})
}

func TestSealFailureStages(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(*env)
		want  Stage
	}{
		{"key provider", func(e *env) { e.keys.fail = errors.New("injected: key service down") }, StageKeys},
		{"store", func(e *env) { e.store.create = errors.New("injected: disk full") }, StageStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			_, err := Begin(ctx, e.v, e.keys, archive.NewID(time.Now()))
			if StageOf(err) != tc.want {
				t.Fatalf("Begin: %v (stage %q), want stage %q", err, StageOf(err), tc.want)
			}
			if n := e.keys.uncleared(); n != 0 {
				t.Fatalf("%d data keys left uncleared", n)
			}
		})
	}
	if StageOf(errors.New("other")) != "" {
		t.Fatal("StageOf names a stage for a foreign error")
	}
}

// TestKeysCleared checks that every plaintext data key handed out, on the
// seal side and the open side, is cleared when the writer or message ends.
func TestKeysCleared(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	_, id, _ := e.seal(t, testMessage(3000), time.Now()) // Commit
	w, err := Begin(ctx, e.v, e.keys, archive.NewID(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	w.Abort() // Abort
	msg, err := Open(ctx, e.v, e.keys, id)
	if err != nil {
		t.Fatal(err)
	}
	if e.keys.uncleared() != 1 {
		t.Fatalf("%d keys live while one message is open, want 1", e.keys.uncleared())
	}
	msg.Close()
	if _, err := msg.NewReader(ctx, 0, -1); err == nil {
		t.Fatal("NewReader after Close succeeded")
	}
	if _, err := OpenManifest(ctx, e.v, e.keys, id); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, e.v, e.keys, id, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := e.keys.uncleared(); n != 0 || len(e.keys.keys) != 5 {
		t.Fatalf("%d of %d data keys left uncleared", n, len(e.keys.keys))
	}
}

// plant stores a message with the low-level pieces, sealed under a key bound
// to ctxID and with a manifest naming manifestID: what a bug, a restore
// from the wrong place or an attacker with write access might leave.
func plant(t *testing.T, e *env, id, ctxID, manifestID string, raw []byte) {
	t.Helper()
	ctx := context.Background()
	at := time.Now()
	dk, err := e.keys.GenerateDataKey(ctx, sealer.ArchiveContext(ctxID))
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Clear()
	dep, err := e.v.Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := sealer.NewWriter(dep, dk, purposeMessage)
	if err != nil {
		t.Fatal(err)
	}
	sw.Write(raw)
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	mb, err := EncodeManifest(&Manifest{ID: manifestID, ReceivedAt: at, Size: int64(len(raw))})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := sealer.SealBlob(dk, purposeManifest, mb)
	if err != nil {
		t.Fatal(err)
	}
	fp := e.v.Fingerprint(testEnvelope)
	fp.Write([]byte(id))
	if _, _, err := dep.Commit(ctx, archive.Record{Envelope: testEnvelope, ReceivedAt: at,
		Meta: sw.Metadata().Map(), Manifest: blob, Fingerprint: fp.Sum(nil)}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenChecks(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := testMessage(200)
	good := archive.NewID(time.Now())
	plant(t, e, good, good, good, raw)
	otherCtx := archive.NewID(time.Now())
	plant(t, e, otherCtx, archive.NewID(time.Now()), otherCtx, raw)
	otherManifest := archive.NewID(time.Now())
	plant(t, e, otherManifest, otherManifest, good, raw)

	for _, tc := range []struct {
		name string
		id   string
		want error
	}{
		{"context names another id", otherCtx, sealer.ErrDecrypt},
		{"manifest names another id", otherManifest, sealer.ErrDecrypt},
		{"missing", archive.NewID(time.Now()), archive.ErrNotFound},
		{"not an id", "../msg/x", archive.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Open(ctx, e.v, e.keys, tc.id); !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if _, err := Copy(ctx, e.v, e.keys, tc.id, io.Discard); !errors.Is(err, tc.want) {
				t.Fatalf("Copy: %v, want %v", err, tc.want)
			}
		})
	}
	// The control: the well-formed plant opens.
	if _, err := OpenManifest(ctx, e.v, e.keys, good); err != nil {
		t.Fatal(err)
	}
	if n := e.keys.uncleared(); n != 0 {
		t.Fatalf("%d data keys left uncleared after failed opens", n)
	}
}
