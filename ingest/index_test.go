package ingest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/sealed"
)

// recordingIndexer keeps what each delivery's MessageIndex was given; it
// fails or panics on demand.
type recordingIndexer struct {
	idx     []*recordingIndex
	panicOn string // "begin", "write", "commit"
	failOn  string // "write"
}

func (r *recordingIndexer) Begin(env Envelope, id string) MessageIndex {
	if r.panicOn == "begin" {
		panic("injected panic in Begin")
	}
	mi := &recordingIndex{parent: r, env: env, id: id}
	r.idx = append(r.idx, mi)
	return mi
}

type recordingIndex struct {
	parent    *recordingIndexer
	env       Envelope
	id        string
	buf       bytes.Buffer
	committed []*sealed.Manifest
	res       Result
	aborted   int
}

func (m *recordingIndex) Write(p []byte) (int, error) {
	switch {
	case m.parent.panicOn == "write":
		panic("injected panic in Write")
	case m.parent.failOn == "write":
		return 0, errors.New("injected: extractor broken")
	}
	return m.buf.Write(p)
}

func (m *recordingIndex) Commit(_ context.Context, man *sealed.Manifest, res Result) {
	if m.parent.panicOn == "commit" {
		panic("injected panic in Commit")
	}
	m.committed = append(m.committed, man)
	m.res = res
}

func (m *recordingIndex) Abort() { m.aborted++ }

func TestIndexerSeesEveryByteAndCommitsOnce(t *testing.T) {
	c := newCore(t)
	ix := &recordingIndexer{}
	c.Indexer = ix
	msg := testMessage()
	fwd := &recordingForwarder{}
	res, err := c.Deliver(context.Background(), testEnv, bytes.NewReader(msg), fwd)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.idx) != 1 {
		t.Fatalf("Begin called %d times, want 1", len(ix.idx))
	}
	mi := ix.idx[0]
	if !bytes.Equal(mi.buf.Bytes(), msg) {
		t.Fatalf("indexer saw %d bytes, want the %d of the message", mi.buf.Len(), len(msg))
	}
	if len(mi.committed) != 1 || mi.aborted != 0 {
		t.Fatalf("committed %d, aborted %d; want one Commit", len(mi.committed), mi.aborted)
	}
	if m := mi.committed[0]; m.ID != res.ID || mi.id != res.ID || m.Header.Subject != "ingest test" || mi.res.Size != int64(len(msg)) {
		t.Fatalf("commit got manifest %+v, result %+v; delivery %+v", m, mi.res, res)
	}
	if mi.env.From != testEnv.From {
		t.Fatalf("Begin got envelope %+v", mi.env)
	}

	// The same message again is a duplicate: nothing new to index.
	if _, err := c.Deliver(context.Background(), testEnv, bytes.NewReader(msg), nil); err != nil {
		t.Fatal(err)
	}
	if dup := ix.idx[1]; len(dup.committed) != 0 || dup.aborted != 1 {
		t.Fatalf("duplicate: committed %d, aborted %d; want one Abort", len(dup.committed), dup.aborted)
	}
}

func TestIndexerAbortedWhenDeliveryFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*testCore, *recordingForwarder)
	}{
		{"next hop refuses", func(_ *testCore, f *recordingForwarder) { f.finishErr = refusal{permanent: true} }},
		{"store fails", func(c *testCore, _ *recordingForwarder) { c.store.err = errors.New("injected: disk gone") }},
		{"forward write fails", func(_ *testCore, f *recordingForwarder) { f.writeErr = errors.New("injected: hop gone") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t)
			ix := &recordingIndexer{}
			c.Indexer = ix
			fwd := &recordingForwarder{}
			tc.setup(c, fwd)
			if _, err := c.Deliver(context.Background(), testEnv, bytes.NewReader(testMessage()), fwd); err == nil {
				t.Fatal("delivery succeeded")
			}
			for _, mi := range ix.idx {
				if len(mi.committed) != 0 || mi.aborted != 1 {
					t.Fatalf("committed %d, aborted %d; want one Abort", len(mi.committed), mi.aborted)
				}
			}
		})
	}
}

func TestIndexerFailureNeverFailsDelivery(t *testing.T) {
	for _, tc := range []struct {
		name, panicOn, failOn string
		wantCommit            bool
		log                   string
	}{
		{"panic in Begin", "begin", "", false, "injected panic in Begin"},
		{"panic in Write", "write", "", false, "injected panic in Write"},
		{"error from Write", "", "write", false, "extractor broken"},
		{"panic in Commit", "commit", "", false, "injected panic in Commit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCore(t)
			ix := &recordingIndexer{panicOn: tc.panicOn, failOn: tc.failOn}
			c.Indexer = ix
			fwd := &recordingForwarder{}
			if _, err := c.Deliver(context.Background(), testEnv, bytes.NewReader(testMessage()), fwd); err != nil {
				t.Fatalf("delivery failed with a broken indexer: %v", err)
			}
			if fwd.finished != 1 || c.archived(t) != 1 {
				t.Fatalf("forwarder finished %d, archive holds %d", fwd.finished, c.archived(t))
			}
			if !strings.Contains(c.logs.String(), tc.log) {
				t.Fatalf("indexer failure not logged:\n%s", c.logs)
			}
			for _, mi := range ix.idx {
				if tc.failOn == "write" && (len(mi.committed) != 0 || mi.aborted != 1) {
					t.Fatalf("a failed index was committed %d, aborted %d; want Abort", len(mi.committed), mi.aborted)
				}
			}
		})
	}
}
