// Package ingest is the delivery core every front end calls: one message
// (an Envelope and a stream) in; sealed, committed to the archive and
// forwarded out; a Result or an Error that says which stage failed and
// whether a retry may succeed. The SMTP content filter (smtpd), a milter and
// an importer differ only in how they read the message, what they forward to
// (a Forwarder, or nothing) and how they translate an Error for their client.
//
// ingest never listens, never speaks a protocol and never chooses a reply:
// front ends translate, the core decides, stores store. It holds the
// plaintext of each delivery, so its readers (the catalog) plug in here:
// Core.Indexer sees the bytes as they stream and the manifest on commit,
// Core.OnCommit the manifest alone.
package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/pgpmime"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// Envelope is one message's envelope as the front end received it.
type Envelope struct {
	From string   // "" for the null sender
	To   []string // in the order received

	// What the front end learnt of the body, for a Forwarder that must pass
	// it on (SMTP's BODY=8BITMIME and SMTPUTF8). The core stores the bytes
	// as received whatever they say.
	Body8BitMIME bool
	SMTPUTF8     bool

	// PGP, when not nil, asks for the forwarded copy to be PGP/MIME
	// encrypted to these recipients' keys; the archive keeps the original.
	PGP *PGP
}

// PGP is the OpenPGP side of one delivery whose recipients all have a usable
// key.
type PGP struct {
	Recipients []*pgpmime.Recipient
	Options    pgpmime.Options
}

// Forwarder is the message's way to the next hop. Deliver writes the
// message to it while it archives, and calls Finish (which must make the
// next hop accept or refuse) only after the archive commit; if anything
// fails first, it calls Abort, which must make sure the next hop delivers
// nothing. Exactly one of Finish and Abort is called, except that Abort
// follows a Finish that panicked.
//
// An error whose chain holds a Permanent that reports true is a refusal for
// good (the next hop's 5xx); a front end that must repeat the next hop's
// answer unwraps its own error type from the Error.
type Forwarder interface {
	Write(p []byte) (int, error)
	Finish() error
	Abort()
}

// CommitHook is given the plaintext manifest of every message newly
// archived and accepted by the next hop (not of a duplicate, not of one
// undone because the forward failed). It runs inside the delivery, before
// the front end answers, so it should be quick; its failure (an error or a
// panic) is logged and never fails the delivery: the archive alone is
// complete, and whatever the hook feeds can be rebuilt from it.
type CommitHook func(ctx context.Context, m *sealed.Manifest) error

// Result is what one delivery did.
type Result struct {
	ID        string // the archive id (of the first copy, for a duplicate)
	QueueID   string // Postfix's queue id from the top Received header, if any
	Size      int64  // bytes read
	Duplicate bool   // already archived: nothing new was stored
	PGP       string // what happened to the forwarded copy, when OpenPGP applies
	// Stages holds the duration of each stage that ran: "keys", "stream",
	// "commit", "forward".
	Stages map[string]time.Duration
}

// Core delivers messages. Its fields are set once; Deliver may be called
// from many goroutines.
type Core struct {
	Vault      *archive.Vault
	Keys       sealer.KeyProvider
	MIMELimits partmap.Limits
	Logger     *slog.Logger
	Now        func() time.Time // nil: time.Now
	OnCommit   CommitHook       // nil: none
	Indexer    Indexer          // nil: none
}

// copyBufSize is the unit in which a message is read and fanned out.
const copyBufSize = 32 << 10

// headSniffWindow is how much of the head is kept to find the queue id.
const headSniffWindow = 16 << 10

// Deliver archives the message read from r and, if fwd is not nil, forwards
// it through fwd. It returns without error only when the archive holds the
// message and the next hop (if any) has accepted it; every error is an
// *Error. A panic inside Deliver is one failed delivery (KindInternal,
// temporary), never a dead daemon: it is recovered here, and the forwarder
// aborted with every other failure.
func (c *Core) Deliver(ctx context.Context, env Envelope, r io.Reader, fwd Forwarder) (res Result, err error) {
	res.Stages = make(map[string]time.Duration, 4)
	var w *sealed.Writer
	var ix *guardedIndex
	defer func() {
		if v := recover(); v != nil {
			c.Logger.Error("panic in delivery", "id", res.ID, "panic", v, "stack", string(debug.Stack()))
			err = fail(StageInternal, KindInternal, fmt.Errorf("panic: %v", v))
		}
		if err != nil {
			if fwd != nil {
				fwd.Abort()
			}
			if w != nil {
				w.Abort() // a no-op once committed
			}
		}
		ix.abort() // a no-op once committed
	}()

	start := c.now()
	res.ID = archive.NewID(start)

	keys := &timedKeys{KeyProvider: c.Keys}
	w, err = sealed.Begin(ctx, c.Vault, keys, res.ID)
	if keys.called {
		res.Stages[StageKeys] = keys.took
	}
	if err != nil {
		w = nil
		if sealed.StageOf(err) == sealed.StageKeys {
			return res, keysFailure(err)
		}
		return res, fail(StageStore, KindStore, err)
	}

	// out is where the message goes to the next hop: fwd itself, or a
	// PGP/MIME writer over it that must be closed before Finish.
	var out io.Writer
	var outClose func() error
	if fwd != nil {
		out = fwd
		if env.PGP != nil {
			prefix, err := readPrefix(r, pgpmime.SniffWindow)
			if err != nil {
				return res, readFailure(err)
			}
			r = io.MultiReader(bytes.NewReader(prefix), r)
			if prot := pgpmime.Detect(prefix); prot.Encrypted() {
				res.PGP = "already encrypted (" + prot.String() + ")"
			} else {
				pw, err := pgpmime.NewPGPMIMEWriter(fwd, pgpmime.ParseOuterHeaders(prefix), env.PGP.Recipients, env.PGP.Options)
				if err != nil {
					return res, fail(StageForward, KindInternal, err)
				}
				out, outClose = pw, pw.Close
				res.PGP = "encrypted"
			}
		}
	}

	aenv := archive.Envelope{From: env.From, To: env.To}
	fp := c.Vault.Fingerprint(aenv)
	scan := partmap.NewScanner(c.MIMELimits)
	head := &headSniffer{max: headSniffWindow}
	if c.Indexer != nil {
		ix = beginIndex(c.Indexer, env, res.ID, c.Logger)
	}

	// Fan the message out. Failures are told apart by the writer that
	// failed, so each gets its own kind and log cause.
	t := time.Now()
	buf := make([]byte, copyBufSize)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			res.Size += int64(n)
			fp.Write(chunk)
			scan.Write(chunk)
			head.Write(chunk)
			ix.write(chunk)
			if _, err := w.Write(chunk); err != nil {
				return res, fail(StageStore, KindStore, err)
			}
			if out != nil {
				if _, err := out.Write(chunk); err != nil {
					return res, NextHopFailure(err)
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return res, readFailure(rerr)
		}
		if err := ctx.Err(); err != nil {
			return res, fail(StageRead, KindTimeout, err)
		}
	}
	res.Stages["stream"] = time.Since(t)
	res.QueueID = head.queueID()

	t = time.Now()
	id, dup, err := w.Commit(ctx, sealed.Record{Envelope: aenv, ReceivedAt: start, Parts: scan.Close(), Fingerprint: fp.Sum(nil)})
	res.Stages["commit"] = time.Since(t)
	if err != nil {
		if sealed.StageOf(err) == sealed.StageInternal {
			return res, fail(StageInternal, KindInternal, err)
		}
		return res, fail(StageStore, KindStore, err)
	}
	res.ID, res.Duplicate = id, dup

	if fwd != nil {
		t = time.Now()
		var err error
		if outClose != nil {
			err = outClose()
		}
		if err == nil {
			err = fwd.Finish()
		} else {
			fwd.Abort()
		}
		fwd = nil // Finish or Abort has been called: the deferred Abort must not run again
		res.Stages["forward"] = time.Since(t)
		if err != nil {
			// Nothing may claim a delivery that did not happen: take the
			// archive entry back; the retry archives it anew.
			if uerr := w.Undo(ctx); uerr != nil {
				c.Logger.Warn("archive entry left after a failed forward; the retry will reuse it",
					"id", res.ID, "err", uerr)
			}
			return res, NextHopFailure(err)
		}
	}
	if !dup {
		m := w.Manifest()
		c.committed(ctx, m)
		ix.commit(ctx, m, res)
	}
	return res, nil
}

// committed runs the commit hook; nothing it does fails the delivery.
func (c *Core) committed(ctx context.Context, m *sealed.Manifest) {
	if c.OnCommit == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			c.Logger.Error("panic in the commit hook; the delivery stands", "id", m.ID, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	if err := c.OnCommit(ctx, m); err != nil {
		c.Logger.Warn("commit hook failed; the delivery stands", "id", m.ID, "err", err)
	}
}

func (c *Core) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// readPrefix reads up to n bytes of r (fewer at its end).
func readPrefix(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	return buf[:m], nil
}

// timedKeys times the one GenerateDataKey of a delivery, for its "keys"
// stage.
type timedKeys struct {
	sealer.KeyProvider
	called bool
	took   time.Duration
}

func (k *timedKeys) GenerateDataKey(ctx context.Context, encCtx map[string]string) (*sealer.DataKey, error) {
	t := time.Now()
	dk, err := k.KeyProvider.GenerateDataKey(ctx, encCtx)
	k.called, k.took = true, time.Since(t)
	return dk, err
}
