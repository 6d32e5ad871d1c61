package sealed

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealer"
)

// Writer is one message being sealed into the Vault. Like an io.Writer it is
// used by one goroutine at a time. It must end with Commit or Abort; the
// plaintext data key is cleared on every path that ends it.
type Writer struct {
	id   string
	dk   *sealer.DataKey // nil once cleared
	dep  *archive.Deposit
	sw   *sealer.Writer
	size int64

	done      bool // committed or aborted
	committed bool // Commit stored a new message (not a duplicate)
	manifest  *Manifest
}

var _ io.Writer = (*Writer)(nil)

var errFinished = errors.New("writer already committed or aborted")

// Begin starts sealing the message of archive id id (from archive.NewID): a
// fresh data key bound to id from keys, then the message object in v.
func Begin(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string) (*Writer, error) {
	dk, err := keys.GenerateDataKey(ctx, sealer.ArchiveContext(id))
	if err != nil {
		return nil, &Error{Stage: StageKeys, Op: "generate data key", ID: id, Err: err}
	}
	dep, err := v.Begin(ctx, id)
	if err != nil {
		dk.Clear()
		return nil, &Error{Stage: StageStore, Op: "begin", ID: id, Err: err}
	}
	// NewWriter writes the stream header into the deposit, so its failure
	// is the store's.
	sw, err := sealer.NewWriter(dep, dk, purposeMessage)
	if err != nil {
		dep.Abort()
		dk.Clear()
		return nil, &Error{Stage: StageStore, Op: "begin", ID: id, Err: err}
	}
	return &Writer{id: id, dk: dk, dep: dep, sw: sw}, nil
}

// ID returns the archive id the message is being sealed under.
func (w *Writer) ID() string { return w.id }

// Write seals message bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, &Error{Stage: StageInternal, Op: "write", ID: w.id, Err: errFinished}
	}
	n, err := w.sw.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, &Error{Stage: StageStore, Op: "write", ID: w.id, Err: err}
	}
	return n, nil
}

// Record is what the caller knows of the message once its bytes are written.
type Record struct {
	Envelope   archive.Envelope
	ReceivedAt time.Time
	// Parts is the part map of the bytes written (partmap.Scanner.Close);
	// nil stores a manifest without header summary or parts.
	Parts *partmap.PartMap
	// Fingerprint is archive.Vault.Fingerprint(Envelope) over the bytes
	// written.
	Fingerprint []byte
}

// Commit finishes the sealed stream, seals the manifest under the same data
// key and commits both to the Vault. If the Vault already holds the same
// message (a retried delivery), it returns that message's id with duplicate
// set and stores nothing new.
//
// Commit ends the writer whatever it returns; after an error nothing of the
// message is left in the Vault (best effort, see archive.Deposit.Commit).
func (w *Writer) Commit(ctx context.Context, r Record) (id string, duplicate bool, err error) {
	if w.done {
		return "", false, &Error{Stage: StageInternal, Op: "commit", ID: w.id, Err: errFinished}
	}
	w.done = true
	defer w.clearKey()
	defer func() {
		if err != nil {
			w.dep.Abort() // a no-op once the deposit's own Commit has run
		}
	}()

	if err := w.sw.Close(); err != nil {
		return "", false, &Error{Stage: StageStore, Op: "close", ID: w.id, Err: err}
	}
	m := &Manifest{ID: w.id, ReceivedAt: r.ReceivedAt.UTC(), From: r.Envelope.From, To: r.Envelope.To, Size: w.size}
	if r.Parts != nil {
		m.Header, m.Parts, m.Broken = r.Parts.Header, r.Parts.Parts, r.Parts.Broken
	}
	mb, err := EncodeManifest(m)
	if err != nil {
		return "", false, &Error{Stage: StageInternal, Op: "encode manifest", ID: w.id, Err: err}
	}
	blob, err := sealer.SealBlob(w.dk, purposeManifest, mb)
	clear(mb)
	if err != nil {
		return "", false, &Error{Stage: StageInternal, Op: "seal manifest", ID: w.id, Err: err}
	}
	id, duplicate, err = w.dep.Commit(ctx, archive.Record{
		Envelope:    r.Envelope,
		ReceivedAt:  r.ReceivedAt,
		Meta:        w.sw.Metadata().Map(),
		Manifest:    blob,
		Fingerprint: r.Fingerprint,
	})
	if err != nil {
		return "", false, &Error{Stage: StageStore, Op: "commit", ID: w.id, Err: err}
	}
	if !duplicate {
		w.committed, w.manifest = true, m
	}
	return id, duplicate, nil
}

// Manifest returns the plaintext manifest that Commit stored, or nil before a
// successful Commit and for a duplicate (which stored nothing). The caller
// must not modify it.
func (w *Writer) Manifest() *Manifest { return w.manifest }

// Size returns the message bytes written so far.
func (w *Writer) Size() int64 { return w.size }

// Abort discards an uncommitted message. It is a no-op after Commit or Abort.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.sw.Abort() // clears the buffered plaintext; nothing after a Close
	w.dep.Abort()
	w.clearKey()
}

// Undo takes back what a successful Commit stored (when what the commit
// was for, such as the forward to the next hop, failed afterwards), so that
// the retry archives the message anew. For a duplicate or an uncommitted
// message it does nothing. It runs even when ctx is done, bounded by 30 s.
func (w *Writer) Undo(ctx context.Context) error {
	if !w.committed {
		return nil
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	if err := w.dep.Undo(uctx); err != nil {
		return &Error{Stage: StageStore, Op: "undo", ID: w.id, Err: err}
	}
	w.committed = false
	return nil
}

func (w *Writer) clearKey() {
	if w.dk != nil {
		w.dk.Clear()
		w.dk = nil
	}
}
