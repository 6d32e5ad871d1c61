package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/pgpmime"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// Pipeline is the delivery transaction: it streams one message at the same
// time into the sealer (and from there into the archive), into the MIME part
// map, and into the next hop; when the input ends it commits the archive
// first and only then lets the next hop have the final ".".
type Pipeline struct {
	Vault      *archive.Vault
	Keys       sealer.KeyProvider
	MIMELimits partmap.Limits
	Logger     *slog.Logger
	Metrics    *Metrics // may be nil
	Now        func() time.Time
}

// Envelope is one transaction's envelope as received.
type Envelope struct {
	From string
	To   []string
	Opts *smtp.MailOptions

	// Encrypt, when not nil, asks for the forwarded copy to be PGP/MIME
	// encrypted to these recipients' keys (the archive keeps the original).
	Encrypt *pgpGroup
}

// pgpGroup is the OpenPGP side of one transaction whose recipients all have
// a usable key.
type pgpGroup struct {
	recipients []*pgpmime.Recipient
	opts       pgpmime.Options
}

// outcome is what one delivery did, for the log line and the metrics.
type outcome struct {
	id        string
	queueID   string
	size      int64
	duplicate bool
	pgp       string // what happened to the forwarded copy, when OpenPGP applies
	stages    map[string]time.Duration
}

// copyBufSize is the unit in which DATA is read and fanned out.
const copyBufSize = 32 << 10

// Deliver archives the message read from r and, if tx is not nil, forwards
// it through tx. It returns the archive id only when the archive holds the
// message and the next hop has accepted it.
func (p *Pipeline) Deliver(ctx context.Context, env Envelope, r io.Reader, tx *forwardTx) (out outcome, err error) {
	out.stages = make(map[string]time.Duration, 4)
	committed := false
	var dep *archive.Deposit
	defer func() {
		if tx != nil && err != nil {
			tx.Abort()
		}
		if dep != nil && !committed {
			dep.Abort()
		}
	}()

	start := p.now()
	out.id = archive.NewID(start)

	t := time.Now()
	dk, err := p.Keys.GenerateDataKey(ctx, sealer.ArchiveContext(out.id))
	out.stages["keys"] = time.Since(t)
	p.Metrics.keyCall("generate", err)
	if err != nil {
		return out, fail("keys", replyKeysFailed, err)
	}
	defer dk.Clear()

	// fwd is where the message goes to the next hop: tx itself, or a
	// PGP/MIME writer over it that must be closed before the final ".".
	var fwd io.Writer
	var fwdClose func() error
	if tx != nil {
		fwd = tx
		if env.Encrypt != nil {
			prefix, err := readPrefix(r, pgpmime.SniffWindow)
			if err != nil {
				return out, err
			}
			r = io.MultiReader(bytes.NewReader(prefix), r)
			if prot := pgpmime.Detect(prefix); prot.Encrypted() {
				out.pgp = "already encrypted (" + prot.String() + ")"
			} else {
				w, err := pgpmime.NewPGPMIMEWriter(tx, pgpmime.ParseOuterHeaders(prefix), env.Encrypt.recipients, env.Encrypt.opts)
				if err != nil {
					return out, fail("forward", replyTransient, err)
				}
				fwd, fwdClose = w, w.Close
				out.pgp = "encrypted"
			}
		}
	}

	dep, err = p.Vault.Begin(ctx, out.id)
	if err != nil {
		return out, fail("store", replyStoreFailed, err)
	}
	sw, err := sealer.NewWriter(dep, dk, "message")
	if err != nil {
		return out, fail("store", replyStoreFailed, err)
	}
	fp := p.Vault.Fingerprint(archive.Envelope{From: env.From, To: env.To})
	scan := partmap.NewScanner(p.MIMELimits)
	head := &headSniffer{max: 16 << 10}

	// Fan DATA out. Failures are told apart by the writer that failed, so
	// each gets its own reply and log cause.
	t = time.Now()
	buf := make([]byte, copyBufSize)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			out.size += int64(n)
			fp.Write(chunk)
			scan.Write(chunk)
			head.Write(chunk)
			if _, err := sw.Write(chunk); err != nil {
				return out, fail("store", replyStoreFailed, err)
			}
			if fwd != nil {
				if _, err := fwd.Write(chunk); err != nil {
					return out, fail("forward", nextHopReply(err), err)
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return out, readFailure(rerr)
		}
		if err := ctx.Err(); err != nil {
			return out, fail("read", replyTimeout, err)
		}
	}
	out.stages["stream"] = time.Since(t)
	out.queueID = head.queueID()

	t = time.Now()
	if err := sw.Close(); err != nil {
		return out, fail("store", replyStoreFailed, err)
	}
	pm := scan.Close()
	mb, err := sealed.EncodeManifest(&sealed.Manifest{
		ID: out.id, ReceivedAt: start.UTC(), From: env.From, To: env.To, Size: out.size,
		Header: pm.Header, Parts: pm.Parts, Broken: pm.Broken,
	})
	if err != nil {
		return out, fail("internal", replyTransient, err)
	}
	sealedManifest, err := sealer.SealBlob(dk, "manifest", mb)
	clear(mb)
	if err != nil {
		return out, fail("internal", replyTransient, err)
	}
	id, dup, err := dep.Commit(ctx, archive.Record{
		Envelope:    archive.Envelope{From: env.From, To: env.To},
		ReceivedAt:  start,
		Meta:        sw.Metadata().Map(),
		Manifest:    sealedManifest,
		Fingerprint: fp.Sum(nil),
	})
	out.stages["commit"] = time.Since(t)
	if err != nil {
		return out, fail("store", replyStoreFailed, err)
	}
	committed = true
	out.id, out.duplicate = id, dup

	if tx != nil {
		t = time.Now()
		var err error
		if fwdClose != nil {
			err = fwdClose()
		}
		if err == nil {
			err = tx.Finish()
		}
		out.stages["forward"] = time.Since(t)
		if err != nil {
			// Nothing may claim a delivery that did not happen: take the
			// archive entry back; Postfix's retry archives it anew.
			if uerr := dep.Undo(context.WithoutCancel(ctx)); uerr != nil {
				p.Logger.Warn("archive entry left after a failed forward; the retry will reuse it",
					"id", out.id, "err", uerr)
			}
			return out, fail("forward", nextHopReply(err), err)
		}
	}
	return out, nil
}

// readFailure classifies an error reading DATA from the client.
func readFailure(err error) error {
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return fail("read", replyTooBig, err)
	case errors.Is(err, smtp.ErrTooLongLine):
		// RFC 5321 4.5.3.1.6; Postfix folds lines at 998 bytes, so only a
		// client other than Postfix meets this.
		return fail("read", replyLineTooLong, err)
	}
	return fail("read", replyTransient, err)
}

// readPrefix reads up to n bytes of r (fewer at its end).
func readPrefix(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, readFailure(err)
	}
	return buf[:m], nil
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// headSniffer keeps the first bytes of a message, to find Postfix's queue id.
type headSniffer struct {
	max int
	b   []byte
}

func (h *headSniffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// receivedID matches the queue id in a Postfix Received header:
// "by mx.example.test (Postfix) with ESMTP id 4Xc9Q22XyPz1;".
var receivedID = regexp.MustCompile(`(?is)^received:[^;]*?\bid ([0-9A-Za-z]{6,32})\b`)

// queueID returns the queue id from the first Received header, if any.
func (h *headSniffer) queueID() string {
	end := bytes.Index(h.b, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(h.b)
	}
	hdr := h.b[:end]
	for len(hdr) > 0 {
		// Unfold the first header field.
		i := 0
		for {
			j := bytes.IndexByte(hdr[i:], '\n')
			if j < 0 {
				i = len(hdr)
				break
			}
			i += j + 1
			if i >= len(hdr) || (hdr[i] != ' ' && hdr[i] != '\t') {
				break
			}
		}
		field := hdr[:i]
		hdr = hdr[i:]
		if m := receivedID.FindSubmatch(field); m != nil {
			return string(m[1])
		}
		if len(field) >= 9 && bytes.EqualFold(field[:9], []byte("received:")) {
			return "" // the top Received header is not Postfix's
		}
	}
	return ""
}

func (o outcome) String() string { return fmt.Sprintf("%s (%d bytes)", o.id, o.size) }
