package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/mailvault/mailvaultd/ingest"
)

// session is one milter connection: Postfix uses it for one SMTP connection,
// which may carry several transactions, one after another.
type session struct {
	gomilter.NoOpMilter
	s *Server

	env          ingest.Envelope
	tooManyRcpts bool
	d            *delivery // the message being streamed into the core, from its first header
	buf          []byte    // reused for header lines and converted body chunks
	body         crlfBody
}

var _ gomilter.Milter = (*session)(nil)

// delivery is one message on its way into the core: the pipe it is
// written to, and the core's answer once Deliver has returned.
type delivery struct {
	pw     *io.PipeWriter
	size   int64
	werr   error // the first failed write: the core stopped reading
	cancel context.CancelFunc
	done   chan struct{}
	res    ingest.Result
	err    error
	start  time.Time
}

// errAborted is what the core reads when Postfix abandons the transaction
// (the SMTP client went away, RSET, another milter rejected it, or the
// connection to us broke): a read error, so nothing is committed.
var errAborted = errors.New("milter: transaction aborted by the MTA")

func (m *session) reset() {
	if m.d != nil {
		m.finish(errAborted)
	}
	m.env = ingest.Envelope{}
	m.tooManyRcpts = false
	m.body = crlfBody{}
}

func (m *session) MailFrom(from string, esmtpArgs string, _ gomilter.Modifier) (*gomilter.Response, error) {
	m.reset()
	m.env.From = from
	esmtpFlags(&m.env, esmtpArgs)
	return gomilter.RespContinue, nil
}

func (m *session) RcptTo(rcptTo string, _ string, _ gomilter.Modifier) (*gomilter.Response, error) {
	if len(m.env.To) >= m.s.opts.MaxRecipients {
		return replyTooManyRcpts.response(), nil
	}
	m.env.To = append(m.env.To, rcptTo)
	return gomilter.RespContinue, nil
}

// Header starts the delivery at the first header (Postfix's own Received
// header, which it sends first) and writes each field as queued.
func (m *session) Header(name string, value string, _ gomilter.Modifier) (*gomilter.Response, error) {
	if m.d == nil {
		if m.s.closing.Load() {
			return replyShuttingDown.response(), nil
		}
		m.begin()
	}
	m.buf = appendHeader(m.buf[:0], name, value)
	return m.write(m.buf)
}

// Headers ends the header section with its empty line.
func (m *session) Headers(_ gomilter.Modifier) (*gomilter.Response, error) {
	if m.d == nil { // no header at all: Postfix always sends one, but be exact anyway
		if m.s.closing.Load() {
			return replyShuttingDown.response(), nil
		}
		m.begin()
	}
	return m.write([]byte("\r\n"))
}

func (m *session) BodyChunk(chunk []byte, _ gomilter.Modifier) (*gomilter.Response, error) {
	if m.d == nil {
		return replyTransient.response(), nil // a body without end of headers: not a transaction we can rebuild
	}
	m.buf = m.body.convert(m.buf[:0], chunk)
	return m.write(m.buf)
}

// EndOfMessage waits for the core: accept only once the archive holds the
// message.
func (m *session) EndOfMessage(mod gomilter.Modifier) (*gomilter.Response, error) {
	if m.d == nil {
		return replyTransient.response(), nil
	}
	d := m.d
	m.finish(nil)
	queueID := mod.Get(gomilter.MacroQueueId)
	log := m.s.opts.Logger.With("queue_id", queueID, "id", d.res.ID, "from", m.env.From, "rcpts", len(m.env.To), "size", d.res.Size)
	m.s.opts.Metrics.observe(d.res, d.err, time.Since(d.start))
	if d.err != nil {
		r := toReply(d.err)
		log.Warn("milter: message not archived", "reply", r.code, "err", d.err)
		return r.response(), nil
	}
	if d.res.QueueID != "" && queueID != "" && d.res.QueueID != queueID {
		// The top Received header is not this transaction's: still
		// archived, but say so, since the queue id ties the two together.
		log.Warn("milter: queue id in the top Received header differs from the MTA's", "received_queue_id", d.res.QueueID)
	}
	log.Info("archived", "duplicate", d.res.Duplicate)
	return gomilter.RespAccept, nil
}

// Abort ends a transaction Postfix abandoned before our answer, or after it
// (Postfix sends abort after end of message too). A delivery still open is
// cut with a read error: nothing of it is committed.
func (m *session) Abort(_ gomilter.Modifier) error {
	m.reset()
	return nil
}

// Cleanup runs when the connection ends.
func (m *session) Cleanup(_ gomilter.Modifier) {
	m.reset()
}

// begin starts the core on a pipe.
func (m *session) begin() {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	if t := m.s.opts.DeliverTimeout; t > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), t)
	}
	d := &delivery{pw: pw, cancel: cancel, done: make(chan struct{}), start: time.Now()}
	env := m.env
	env.To = append([]string(nil), m.env.To...)
	m.s.inflight.Add(1)
	go func() {
		defer m.s.inflight.Done()
		defer close(d.done)
		d.res, d.err = m.s.core.Deliver(ctx, env, pr, nil)
		// The core stopped reading: make every further write fail at once
		// instead of blocking the session.
		pr.CloseWithError(errCoreDone)
	}()
	m.d = d
}

var errCoreDone = errors.New("milter: delivery already ended")

// write streams p into the core, within the size limit.
func (m *session) write(p []byte) (*gomilter.Response, error) {
	d := m.d
	if d.werr != nil {
		return gomilter.RespContinue, nil // the answer comes at end of message
	}
	if d.size+int64(len(p)) > m.s.opts.MaxMessageBytes {
		// Stop here: the core reads ErrTooBig and commits nothing; the
		// rest of the message is not worth receiving.
		m.finish(fmt.Errorf("%w: over %d bytes", ingest.ErrTooBig, m.s.opts.MaxMessageBytes))
		m.s.opts.Metrics.observe(d.res, d.err, time.Since(d.start))
		r := toReply(d.err)
		m.s.opts.Logger.Warn("milter: message refused", "reply", r.code, "from", m.env.From, "err", d.err)
		return r.response(), nil
	}
	d.size += int64(len(p))
	if _, err := d.pw.Write(p); err != nil {
		d.werr = err
	}
	return gomilter.RespContinue, nil
}

// finish ends the message stream (cause nil: its end; otherwise the error
// the core reads), waits for the core's answer and forgets the delivery.
func (m *session) finish(cause error) {
	d := m.d
	if d == nil {
		return
	}
	m.d = nil
	if cause == nil {
		d.pw.Close()
	} else {
		d.pw.CloseWithError(cause)
	}
	<-d.done
	d.cancel()
}
