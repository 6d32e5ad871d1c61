// Package smtpd is the SMTP front end of mailvaultd: the listener Postfix
// hands mail to (go-smtp, with limits), the client that re-injects mail into
// Postfix (the delivery core's Forwarder), and the translation of the core's
// results and errors into SMTP replies.
//
// smtpd never does cryptography, storage or the delivery transaction itself:
// it hands each message to the delivery core (package ingest) and answers
// what the core decided. Every transient failure is a 451, so Postfix keeps
// the mail queued; nothing internal appears in a reply.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/pgpmime"
)

// Options configure the listener.
type Options struct {
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	MaxSessions     int
	MaxLineLength   int
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	DataTimeout     time.Duration

	NextHop        string // "" : store-only
	NextHopTimeout time.Duration

	// OpenPGP, when not nil and not off, encrypts what is forwarded to
	// recipients whose key it holds.
	OpenPGP *OpenPGP

	// Allow lists the client networks that may connect (nil: DefaultAllow,
	// loopback). Anyone else is answered 554 and disconnected.
	Allow []netip.Prefix
}

// OpenPGP is the recipient-encryption policy for forwarding.
type OpenPGP struct {
	Policy      pgpmime.Policy
	Keys        func() *pgpmime.Keyring // the current keyring (SIGHUP swaps it)
	KeepSubject bool
}

// Replies of the OpenPGP policy.
var (
	replyNeedsKey = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Encryption is required and there is no usable OpenPGP key for this recipient"}
	// RFC 5321 3.3: a client seeing 452 sends the remaining recipients in
	// a later transaction; each transaction then carries one group only, so
	// a failure cannot repeat what already went out.
	replyOtherGroup = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
		Message: "Too many recipients for this transaction, send the rest separately"}
)

// Server is the SMTP listener.
type Server struct {
	opts    Options
	core    *ingest.Core
	metrics *Metrics // may be nil
	log     *slog.Logger
	srv     *smtp.Server
	active  atomic.Int64 // sessions holding a slot

	allow    []netip.Prefix
	refusals *refusalLog

	mu       sync.Mutex
	inflight sync.WaitGroup // transactions inside Data
	closing  bool
	ln       net.Listener
	conns    map[*slotConn]struct{}
}

// New returns a server delivering through p.
func New(o Options, p *Pipeline) *Server {
	s := &Server{opts: o, core: p.core(), metrics: p.Metrics, log: p.Logger, conns: map[*slotConn]struct{}{},
		allow: o.Allow, refusals: newRefusalLog(p.Logger)}
	if s.allow == nil {
		s.allow = DefaultAllow
	}
	srv := smtp.NewServer(s)
	srv.Domain = o.Hostname
	srv.MaxMessageBytes = o.MaxMessageBytes
	srv.MaxRecipients = o.MaxRecipients
	srv.MaxLineLength = o.MaxLineLength
	srv.ReadTimeout = o.ReadTimeout
	srv.WriteTimeout = o.WriteTimeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogPrinter{p.Logger}
	s.srv = srv
	return s
}

// Serve accepts sessions on l until Shutdown. Past MaxSessions, a new
// connection is answered 421 and closed.
func (s *Server) Serve(l net.Listener) error {
	ll := &limitListener{Listener: l, s: s}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.ln = ll
	s.mu.Unlock()
	err := s.srv.Serve(ll)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing || errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets transactions in progress finish until ctx
// ends, then closes every connection. (It closes the sockets itself rather
// than calling go-smtp's Server.Close, which races with connections that
// are still greeting.)
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("smtpd: transactions still running at shutdown: %w", ctx.Err())
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Conn.Close()
	}
	s.mu.Unlock()
	return err
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{s: s, remote: c.Conn().RemoteAddr().String()}
	if s.opts.NextHop != "" {
		sess.hop = &nextHop{addr: s.opts.NextHop, hostname: s.opts.Hostname, timeout: s.opts.NextHopTimeout}
	}
	return sess, nil
}

// session is one SMTP session.
type session struct {
	s      *Server
	remote string
	env    ingest.Envelope
	hop    *nextHop // nil: store-only

	// With OpenPGP: the group of the first accepted recipient decides
	// which recipients this transaction takes.
	group   rcptGroup
	pgpKeys []*pgpmime.Recipient

	inTx bool // counted in Server.inflight

	// dataDone is closed when the Data in progress returns. With BDAT,
	// go-smtp runs Data in a goroutine of its own and calls Reset or Logout
	// while it runs (RSET, EHLO, QUIT, a chunk over the size limit, a lost
	// connection), having first closed Data's reader; they wait for Data to
	// end, so that the two never use the session and its next hop at once.
	dataMu   sync.Mutex
	dataDone chan struct{}
}

type rcptGroup int

const (
	groupNone rcptGroup = iota
	groupEncrypted
	groupPlain
)

// classify decides the group of recipient to under the OpenPGP policy, or
// refuses it.
func (ss *session) classify(to string) (rcptGroup, *pgpmime.Recipient, error) {
	pgp := ss.s.opts.OpenPGP
	if ss.hop == nil || pgp == nil || pgp.Policy == pgpmime.PolicyOff {
		return groupPlain, nil, nil
	}
	if rec, ok := pgp.Keys().Lookup(to); ok {
		return groupEncrypted, rec, nil
	}
	if pgp.Policy == pgpmime.PolicyOpportunistic {
		return groupPlain, nil, nil
	}
	return groupNone, nil, replyNeedsKey
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.Reset()
	if err := ss.beginTx(); err != nil {
		return err
	}
	ss.env = envelopeOf(from, opts)
	path, err := smtpPath(from, ss.env.SMTPUTF8)
	if err != nil {
		ss.endTx()
		ss.s.log.Info("refused a sender no SMTP path can carry", "remote", ss.remote)
		return replyBadSender
	}
	if ss.hop != nil {
		if err := ss.hop.mail(path, opts); err != nil {
			ss.endTx()
			ss.s.log.Warn("next hop refused MAIL FROM", "remote", ss.remote, "err", err)
			return nextHopReply(err)
		}
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	path, err := smtpPath(to, ss.env.SMTPUTF8)
	if err != nil || to == "" {
		ss.s.log.Info("refused a recipient no SMTP path can carry", "remote", ss.remote)
		return replyBadRecipient
	}
	g, rec, err := ss.classify(to)
	if err != nil {
		return err
	}
	if ss.group != groupNone && g != ss.group {
		return replyOtherGroup
	}
	if ss.hop != nil {
		if err := ss.hop.rcpt(path); err != nil {
			ss.s.log.Warn("next hop refused RCPT TO", "remote", ss.remote, "err", err)
			return nextHopReply(err)
		}
	}
	ss.group = g
	if rec != nil {
		ss.pgpKeys = append(ss.pgpKeys, rec)
	}
	ss.env.To = append(ss.env.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	done := make(chan struct{})
	ss.dataMu.Lock()
	ss.dataDone = done
	ss.dataMu.Unlock()
	defer close(done)

	start := time.Now()
	// fwd stays a nil interface in store-only mode.
	var fwd ingest.Forwarder
	if ss.hop != nil {
		tx, err := ss.hop.data()
		if err != nil {
			err := ingest.NextHopFailure(err)
			ss.logResult(ingest.Result{}, start, err)
			return toReply(err)
		}
		fwd = tx
	}
	if ss.group == groupEncrypted {
		ss.env.PGP = &ingest.PGP{Recipients: ss.pgpKeys,
			Options: pgpmime.Options{KeepSubject: ss.s.opts.OpenPGP.KeepSubject}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.DataTimeout)
	defer cancel()
	// A panic in the delivery is recovered by the core, which aborts fwd;
	// one anywhere else here is go-smtp's (421, connection closed).
	res, err := ss.s.core.Deliver(ctx, ss.env, dataReader{r}, fwd)
	ss.logResult(res, start, err)
	if err != nil {
		return toReply(err)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: archived as " + res.ID}
}

// logResult writes the one log line of a message and its metrics.
func (ss *session) logResult(res ingest.Result, start time.Time, err error) {
	lg := ss.s.log
	attrs := []any{"id", res.ID, "queue_id", res.QueueID, "size", res.Size, "rcpts", len(ss.env.To),
		"ms", durAttr(time.Since(start))}
	for _, st := range []string{"keys", "stream", "commit", "forward"} {
		if d, ok := res.Stages[st]; ok {
			attrs = append(attrs, st+"_ms", durAttr(d))
		}
	}
	if res.PGP != "" {
		attrs = append(attrs, "openpgp", res.PGP)
	}
	if lg.Enabled(context.Background(), slog.LevelDebug) {
		attrs = append(attrs, "from", ss.env.From, "to", ss.env.To)
	}
	var ie *ingest.Error
	errors.As(err, &ie)
	if _, called := res.Stages[ingest.StageKeys]; called {
		ss.s.metrics.keyCall("generate", ie != nil && ie.Kind == ingest.KindKeys)
	}
	if err == nil {
		result := "archived"
		if res.Duplicate {
			result = "duplicate"
		}
		ss.s.metrics.delivered(res, result, "")
		lg.Info("message "+result, append(attrs, "outcome", result)...)
		return
	}
	reply := toReply(err)
	stage := ingest.StageForward
	if ie != nil {
		stage = ie.Stage
		if ie.KeyFailure != "" {
			attrs = append(attrs, "key_failure", ie.KeyFailure)
		}
	}
	result := "tempfail"
	if reply.Code/100 == 5 {
		result = "rejected"
	}
	ss.s.metrics.delivered(res, result, stage)
	lg.Warn("message "+result, append(attrs, "outcome", result, "stage", stage, "reply", reply.Code, "err", err)...)
}

// waitData waits for a Data running in go-smtp's BDAT goroutine to end.
func (ss *session) waitData() {
	ss.dataMu.Lock()
	done := ss.dataDone
	ss.dataMu.Unlock()
	if done != nil {
		<-done
	}
}

// beginTx counts a transaction as in flight from MAIL FROM until it ends,
// so that Shutdown lets it finish; once shutting down, no new one starts.
// (Counting only from Data would miss a transaction between go-smtp's 354
// and its call of Data.)
func (ss *session) beginTx() error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.closing {
		return replyShuttingDown
	}
	ss.s.inflight.Add(1)
	ss.inTx = true
	return nil
}

func (ss *session) endTx() {
	if ss.inTx {
		ss.inTx = false
		ss.s.inflight.Done()
	}
}

func (ss *session) Reset() {
	ss.waitData()
	ss.endTx()
	ss.env = ingest.Envelope{}
	ss.group, ss.pgpKeys = groupNone, nil
	if ss.hop != nil {
		ss.hop.reset()
	}
}

func (ss *session) Logout() error {
	ss.waitData()
	ss.endTx()
	if ss.hop != nil {
		ss.hop.quit()
	}
	return nil
}

// limitListener holds one slot per open session.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !clientAllowed(l.s.allow, c.RemoteAddr()) {
			l.s.metrics.connectionRefused("not_authorised")
			l.s.refusals.refused(c.RemoteAddr().String())
			go refuseNotAuthorised(c)
			continue
		}
		if n := l.s.active.Add(1); n > int64(l.s.opts.MaxSessions) {
			l.s.active.Add(-1)
			l.s.metrics.connectionRefused("too_many_sessions")
			go refuse(c)
			continue
		}
		l.s.metrics.sessionDelta(1)
		sc := &slotConn{Conn: c, s: l.s}
		sc.wire = newWire(c, readerFunc(sc.readSocket), l.s.opts.Hostname, l.s.opts.WriteTimeout, l.s.log)
		l.s.mu.Lock()
		l.s.conns[sc] = struct{}{}
		l.s.mu.Unlock()
		return sc, nil
	}
}

// refuse answers a connection over the session limit.
func refuse(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "421 4.3.2 Too many sessions, try again later\r\n")
	c.Close()
}

// slotConn is one session's connection: it holds the session's slot, and
// everything go-smtp reads and writes passes through its wire (wire.go).
type slotConn struct {
	net.Conn
	s    *Server
	once sync.Once
	wire *wire
}

func (c *slotConn) Read(p []byte) (int, error)  { return c.wire.Read(p) }
func (c *slotConn) Write(p []byte) (int, error) { return c.wire.Write(p) }

func (c *slotConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.active.Add(-1)
		c.s.metrics.sessionDelta(-1)
	})
	return c.Conn.Close()
}

// readSocket reads the socket and ends the session at a read timeout. go-smtp closes the connection
// after a timeout between commands, but not after one inside DATA: there it
// replies and reads on, taking the rest of the message for commands, so a
// transaction hidden in the body would be run (smuggled). And a command line
// cut short by a timeout is run as if it were whole (bufio.Reader.ReadLine
// drops the error). After a timeout nobody knows where in the stream the
// client is, so nothing more is read.
func (c *slotConn) readSocket(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c.Conn, "421 4.4.2 Timeout, closing connection\r\n")
		c.Close()
	}
	return n, err
}

// slogPrinter adapts go-smtp's logger to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.l.Warn("smtp: " + fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.l.Warn("smtp: " + fmt.Sprint(v...)) }
