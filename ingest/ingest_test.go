package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/testkit"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/sealer/awskms"
)

// recordingForwarder stands in for a next hop: it keeps what it is given
// and counts Finish and Abort; it fails or panics on demand.
type recordingForwarder struct {
	buf       bytes.Buffer
	writeErr  error
	finishErr error
	panicOn   string // "write"
	finished  int
	aborted   int
}

func (f *recordingForwarder) Write(p []byte) (int, error) {
	if f.panicOn == "write" {
		panic("injected panic in the forwarder")
	}
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return f.buf.Write(p)
}

func (f *recordingForwarder) Finish() error { f.finished++; return f.finishErr }
func (f *recordingForwarder) Abort()        { f.aborted++ }

// refusal is a next hop's refusal, permanent or not.
type refusal struct{ permanent bool }

func (r refusal) Error() string   { return "next hop refused" }
func (r refusal) Permanent() bool { return r.permanent }

// failingKeys and failingStore wrap the real ones and fail on demand.
type failingKeys struct {
	sealer.KeyProvider
	err error
}

func (k *failingKeys) GenerateDataKey(ctx context.Context, c map[string]string) (*sealer.DataKey, error) {
	if k.err != nil {
		return nil, k.err
	}
	return k.KeyProvider.GenerateDataKey(ctx, c)
}

type failingStore struct {
	archive.Store
	err error
}

func (s *failingStore) Create(ctx context.Context, key string) (archive.ObjectWriter, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.Store.Create(ctx, key)
}

type testCore struct {
	*Core
	keys  *failingKeys
	store *failingStore
	logs  *bytes.Buffer
}

func newCore(t *testing.T) *testCore {
	t.Helper()
	dir := t.TempDir()
	kr, fs := testkit.LocalArchive(t, dir)
	tc := &testCore{keys: &failingKeys{KeyProvider: kr}, store: &failingStore{Store: fs}, logs: &bytes.Buffer{}}
	tc.Core = &Core{Vault: archive.NewVault(tc.store, kr.IndexKey()), Keys: tc.keys,
		Logger: slog.New(slog.NewTextHandler(tc.logs, nil))}
	return tc
}

func (tc *testCore) archived(t *testing.T) int {
	t.Helper()
	es, _, err := tc.Vault.List(context.Background(), "", time.Time{}, time.Time{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

var testEnv = Envelope{From: "a@example.test", To: []string{"b@example.test"}}

func testMessage() []byte {
	return []byte("Received: from mx.example.test by relay.example.test (Postfix) with ESMTP id 4Xc9Q22XyPz1;\r\n" +
		"\tMon, 2 Mar 2026 10:00:00 +0000\r\nFrom: A <a@example.test>\r\nSubject: ingest test\r\n\r\n" +
		strings.Repeat("body line\r\n", 10000))
}

func TestDeliver(t *testing.T) {
	for _, withHop := range []bool{false, true} {
		name := "store only"
		if withHop {
			name = "forwarded"
		}
		t.Run(name, func(t *testing.T) {
			tc := newCore(t)
			msg := testMessage()
			var fwd *recordingForwarder
			var f Forwarder // a nil interface when store-only
			if withHop {
				fwd = &recordingForwarder{}
				f = fwd
			}
			res, err := tc.Deliver(context.Background(), testEnv, bytes.NewReader(msg), f)
			if err != nil {
				t.Fatal(err)
			}
			if !archive.ValidID(res.ID) || res.Duplicate || res.Size != int64(len(msg)) || res.QueueID != "4Xc9Q22XyPz1" {
				t.Fatalf("result %+v", res)
			}
			for _, st := range []string{"keys", "stream", "commit"} {
				if _, ok := res.Stages[st]; !ok {
					t.Errorf("stage %s not timed: %v", st, res.Stages)
				}
			}
			var got bytes.Buffer
			if _, err := sealed.Copy(context.Background(), tc.Vault, tc.Keys, res.ID, &got); err != nil || !bytes.Equal(got.Bytes(), msg) {
				t.Fatalf("archived copy differs (%v)", err)
			}
			if withHop {
				if !bytes.Equal(fwd.buf.Bytes(), msg) || fwd.finished != 1 || fwd.aborted != 0 {
					t.Fatalf("forwarder: %d bytes, finished %d, aborted %d", fwd.buf.Len(), fwd.finished, fwd.aborted)
				}
				if _, ok := res.Stages["forward"]; !ok {
					t.Error("forward stage not timed")
				}
			}
			again, err := tc.Deliver(context.Background(), testEnv, bytes.NewReader(msg), nil)
			if err != nil || !again.Duplicate || again.ID != res.ID {
				t.Fatalf("the same message again: %+v, %v; want a duplicate of %s", again, err, res.ID)
			}
		})
	}
}

// errReader fails after its bytes.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

// cancellingReader cancels the delivery's context on its first read: the
// deadline passing mid-message, without a clock.
type cancellingReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

func TestDeliverFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(*testCore, *recordingForwarder)
		reader    func(msg []byte, cancel context.CancelFunc) io.Reader
		stage     string
		kind      Kind
		temporary bool
		finished  int // Finish calls; the rest must be one Abort
	}{
		{name: "key service", setup: func(c *testCore, _ *recordingForwarder) { c.keys.err = errors.New("injected: key service down") },
			stage: StageKeys, kind: KindKeys, temporary: true},
		{name: "store", setup: func(c *testCore, _ *recordingForwarder) { c.store.err = errors.New("injected: disk full") },
			stage: StageStore, kind: KindStore, temporary: true},
		{name: "too big", reader: func(m []byte, _ context.CancelFunc) io.Reader {
			return &errReader{bytes.NewReader(m[:1000]), ErrTooBig}
		}, stage: StageRead, kind: KindTooBig},
		{name: "line too long", reader: func(m []byte, _ context.CancelFunc) io.Reader {
			return &errReader{bytes.NewReader(m[:1000]), ErrLineTooLong}
		}, stage: StageRead, kind: KindLineTooLong},
		{name: "connection lost", reader: func(m []byte, _ context.CancelFunc) io.Reader {
			return &errReader{bytes.NewReader(m[:1000]), io.ErrUnexpectedEOF}
		}, stage: StageRead, kind: KindRead, temporary: true},
		{name: "deadline", reader: func(m []byte, cancel context.CancelFunc) io.Reader {
			return &cancellingReader{bytes.NewReader(m), cancel}
		}, stage: StageRead, kind: KindTimeout, temporary: true},
		{name: "next hop write", setup: func(_ *testCore, f *recordingForwarder) { f.writeErr = errors.New("broken pipe") },
			stage: StageForward, kind: KindNextHop, temporary: true},
		{name: "next hop 4xx at the end", setup: func(_ *testCore, f *recordingForwarder) { f.finishErr = refusal{permanent: false} },
			stage: StageForward, kind: KindNextHop, temporary: true, finished: 1},
		{name: "next hop 5xx at the end", setup: func(_ *testCore, f *recordingForwarder) { f.finishErr = refusal{permanent: true} },
			stage: StageForward, kind: KindNextHop, finished: 1},
		{name: "panic", setup: func(_ *testCore, f *recordingForwarder) { f.panicOn = "write" },
			stage: StageInternal, kind: KindInternal, temporary: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t)
			fwd := &recordingForwarder{}
			if tc.setup != nil {
				tc.setup(c, fwd)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var r io.Reader = bytes.NewReader(testMessage())
			if tc.reader != nil {
				r = tc.reader(testMessage(), cancel)
			}
			hooked := 0
			c.OnCommit = func(context.Context, *sealed.Manifest) error { hooked++; return nil }
			_, err := c.Deliver(ctx, testEnv, r, fwd)
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("Deliver: %v, want an *Error", err)
			}
			if ie.Stage != tc.stage || ie.Kind != tc.kind || ie.Temporary != tc.temporary {
				t.Fatalf("Deliver: stage %q kind %v temporary %v (%v); want %q %v %v",
					ie.Stage, ie.Kind, ie.Temporary, err, tc.stage, tc.kind, tc.temporary)
			}
			if fwd.finished != tc.finished || fwd.finished+fwd.aborted != 1 {
				t.Fatalf("forwarder finished %d, aborted %d; want %d Finish and exactly one of the two", fwd.finished, fwd.aborted, tc.finished)
			}
			if n := c.archived(t); n != 0 {
				t.Fatalf("archive holds %d messages after a failed delivery", n)
			}
			if hooked != 0 {
				t.Fatal("commit hook called for a failed delivery")
			}
		})
	}
}

func TestCommitHook(t *testing.T) {
	c := newCore(t)
	var mu sync.Mutex
	var got []*sealed.Manifest
	c.OnCommit = func(_ context.Context, m *sealed.Manifest) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		return nil
	}
	msg := testMessage()
	res, err := c.Deliver(context.Background(), testEnv, bytes.NewReader(msg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("hook called %d times, want 1", len(got))
	}
	m := got[0]
	if m.ID != res.ID || m.From != testEnv.From || len(m.To) != 1 || m.Size != int64(len(msg)) || m.Header.Subject != "ingest test" {
		t.Fatalf("hook got manifest %+v for result %+v", m, res)
	}
	if _, err := c.Deliver(context.Background(), testEnv, bytes.NewReader(msg), nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatal("hook called for a duplicate")
	}

	// A failing or panicking hook does not fail the delivery.
	for _, hook := range []CommitHook{
		func(context.Context, *sealed.Manifest) error { return errors.New("injected: catalog down") },
		func(context.Context, *sealed.Manifest) error { panic("injected panic in the hook") },
	} {
		c.OnCommit = hook
		env := testEnv
		env.To = []string{"other" + time.Now().Format("150405.000000000") + "@example.test"}
		fwd := &recordingForwarder{}
		if _, err := c.Deliver(context.Background(), env, bytes.NewReader(msg), fwd); err != nil {
			t.Fatalf("delivery failed with its hook: %v", err)
		}
		if fwd.finished != 1 || fwd.aborted != 0 {
			t.Fatalf("forwarder finished %d, aborted %d", fwd.finished, fwd.aborted)
		}
	}
	if !strings.Contains(c.logs.String(), "catalog down") || !strings.Contains(c.logs.String(), "panic in the commit hook") {
		t.Fatalf("hook failures not logged:\n%s", c.logs)
	}
}

// TestKeyFailureClass checks that a KMS failure carries the provider's own
// class, so that the log tells a disabled key or denied access from an
// outage.
func TestKeyFailureClass(t *testing.T) {
	kms := kmstest.Start(t)
	kms.SetEnv(t)
	keyID := kms.CreateKey()
	kms.CreateAlias("alias/mailvault", keyID)
	ctx := context.Background()
	p, err := awskms.New(ctx, awskms.Options{KeyID: "alias/mailvault", Region: "us-east-1", Endpoint: kms.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		fault func()
		want  string
	}{
		{"key disabled", func() { kms.SetKeyEnabled(keyID, false) }, awskms.KindKeyUnusable.String()},
		{"access denied", func() { kms.SetKeyEnabled(keyID, true); kms.SetFault(kmstest.Fault{AccessDenied: true}) }, awskms.KindKeyUnusable.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t)
			c.Keys = p
			tc.fault()
			_, err := c.Deliver(ctx, testEnv, bytes.NewReader(testMessage()), nil)
			var ie *Error
			if !errors.As(err, &ie) || ie.Kind != KindKeys || ie.KeyFailure != tc.want {
				t.Fatalf("Deliver: %v (%+v), want a keys failure classed %q", err, ie, tc.want)
			}
		})
	}
	kms.ClearFault()
	c := newCore(t)
	c.Keys = p
	if _, err := c.Deliver(ctx, testEnv, bytes.NewReader(testMessage()), nil); err != nil {
		t.Fatalf("with KMS healthy again: %v", err)
	}
}

func TestQueueID(t *testing.T) {
	for _, tc := range []struct{ head, want string }{
		{"Received: from a by b (Postfix) with ESMTP id 4Xc9Q22XyPz1;\r\n\tMon, 2 Mar 2026\r\n\r\nbody", "4Xc9Q22XyPz1"},
		{"Received: from a\r\n\tby b (Postfix) with ESMTP id ABC123DEF;\r\n\tdate\r\nSubject: x\r\n\r\n", "ABC123DEF"},
		{"Subject: x\r\nReceived: by b id QQQQQQQQ;\r\n\r\n", "QQQQQQQQ"},
		{"Received: by other-mta; date\r\nReceived: by b id QQQQQQQQ;\r\n\r\n", ""},
		{"Subject: no received\r\n\r\nReceived: by b id QQQQQQQQ;\r\n", ""},
		{"", ""},
	} {
		h := &headSniffer{max: headSniffWindow}
		h.Write([]byte(tc.head))
		if got := h.queueID(); got != tc.want {
			t.Errorf("queueID(%q) = %q, want %q", tc.head, got, tc.want)
		}
	}
}
