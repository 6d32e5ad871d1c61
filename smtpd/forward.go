package smtpd

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/ingest"
)

// nextHop is one session's connection to the next hop (Postfix's re-injection
// port). It is opened at MAIL FROM so that the next hop's verdict on every
// recipient reaches Postfix at RCPT time, and kept for the session's later
// transactions.
type nextHop struct {
	addr     string
	hostname string
	timeout  time.Duration

	c    *smtp.Client
	inTx bool
}

func (h *nextHop) connect() error {
	if h.c != nil {
		return nil
	}
	conn, err := net.DialTimeout("tcp", h.addr, h.timeout)
	if err != nil {
		return fmt.Errorf("forward: dial %s: %w", h.addr, err)
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = h.timeout
	c.SubmissionTimeout = h.timeout
	if err := c.Hello(h.hostname); err != nil {
		c.Close()
		return fmt.Errorf("forward: EHLO to %s: %w", h.addr, err)
	}
	h.c = c
	return nil
}

// mail starts a transaction at the next hop, reconnecting once if a cached
// connection turns out to be dead.
func (h *nextHop) mail(from string, opts *smtp.MailOptions) error {
	h.reset()
	for attempt := 0; ; attempt++ {
		fresh := h.c == nil
		if err := h.connect(); err != nil {
			return err
		}
		err := h.c.Mail(from, forwardMailOptions(opts))
		if err == nil {
			h.inTx = true
			return nil
		}
		if _, isReply := err.(*smtp.SMTPError); isReply || fresh || attempt > 0 {
			if !isReply {
				h.drop()
			}
			return fmt.Errorf("forward: MAIL FROM: %w", err)
		}
		h.drop() // a cached connection the next hop closed meanwhile
	}
}

// forwardMailOptions keeps what the next hop must know of the envelope: the
// body type, SMTPUTF8 and the declared size.
func forwardMailOptions(in *smtp.MailOptions) *smtp.MailOptions {
	if in == nil {
		return nil
	}
	return &smtp.MailOptions{Body: in.Body, UTF8: in.UTF8, Size: in.Size}
}

func (h *nextHop) rcpt(to string) error {
	if err := h.c.Rcpt(to, nil); err != nil {
		if _, isReply := err.(*smtp.SMTPError); !isReply {
			h.drop()
		}
		return fmt.Errorf("forward: RCPT TO: %w", err)
	}
	return nil
}

// data opens DATA at the next hop; the returned transaction must be finished
// or aborted.
func (h *nextHop) data() (*forwardTx, error) {
	if h.c == nil || !h.inTx {
		return nil, &hopError{op: "DATA", err: errors.New("no transaction")}
	}
	dc, err := h.c.Data()
	if err != nil {
		if _, isReply := err.(*smtp.SMTPError); !isReply {
			h.drop()
		}
		return nil, &hopError{op: "DATA", err: err}
	}
	return &forwardTx{hop: h, dc: dc, crlf: newCRLFWriter(dc)}, nil
}

// reset ends an open transaction with RSET.
func (h *nextHop) reset() {
	if h.c != nil && h.inTx {
		if err := h.c.Reset(); err != nil {
			h.drop()
		}
	}
	h.inTx = false
}

// drop closes the connection without a word: a DATA in progress is then
// never completed, so the next hop discards it.
func (h *nextHop) drop() {
	if h.c != nil {
		h.c.Close()
		h.c = nil
	}
	h.inTx = false
}

// quit ends the session politely.
func (h *nextHop) quit() {
	if h.c != nil {
		h.reset()
		if h.c != nil {
			h.c.Quit()
			h.c.Close()
		}
		h.c = nil
	}
}

// forwardTx is the message body on its way to the next hop: the delivery
// core's Forwarder.
type forwardTx struct {
	hop  *nextHop
	dc   *smtp.DataCommand
	crlf *crlfWriter
	done bool
}

func (t *forwardTx) Write(p []byte) (int, error) {
	n, err := t.crlf.Write(p)
	if err != nil {
		return n, &hopError{op: "write", err: err}
	}
	return n, nil
}

// Finish sends the final "." and returns the next hop's verdict.
func (t *forwardTx) Finish() error {
	t.hop.inTx = false
	err := t.finish()
	// Only now: an Abort after a Finish that panicked must still drop the
	// connection, whose state nobody knows.
	t.done = true
	return err
}

func (t *forwardTx) finish() error {
	if err := t.crlf.Flush(); err != nil {
		t.hop.drop()
		return &hopError{op: "write", err: err}
	}
	if err := t.dc.Close(); err != nil {
		if _, isReply := err.(*smtp.SMTPError); !isReply {
			t.hop.drop()
		}
		return &hopError{op: "end of DATA", err: err}
	}
	return nil
}

// Abort drops the connection before the final ".", so nothing is delivered.
func (t *forwardTx) Abort() {
	if !t.done {
		t.done = true
		t.hop.drop()
	}
}

var _ ingest.Forwarder = (*forwardTx)(nil)

// hopError is a failure of the next hop during DATA: its own reply (an
// *smtp.SMTPError, which nextHopReply repeats to Postfix) or a broken
// connection.
type hopError struct {
	op  string
	err error
}

func (e *hopError) Error() string { return "forward: " + e.op + ": " + e.err.Error() }
func (e *hopError) Unwrap() error { return e.err }

// Permanent reports whether the next hop refused the message for good (a
// 5xx), for the core's temporary/permanent verdict.
func (e *hopError) Permanent() bool {
	var se *smtp.SMTPError
	return errors.As(e.err, &se) && se.Code/100 == 5
}

var _ ingest.Permanent = (*hopError)(nil)
