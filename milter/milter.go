// Package milter is the before-queue front end: Postfix (smtpd_milters,
// non_smtpd_milters) shows it each message while it receives it, and queues
// the message once, only if the milter accepts at end of message. The milter
// rebuilds the message exactly as Postfix queues it (its own Received header
// included) from the header and body events, streams it into the delivery
// core, and answers accept only after the archive commit.
//
// It owns the milter protocol side (through github.com/d--j/go-milter; no
// hand-written protocol), the per-message limits and the mapping of the
// core's results to milter replies. It never forwards (Postfix queues and
// delivers the message itself), never changes the message and never decides
// what a failure means: the core (ingest) does.
package milter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/mailvault/mailvaultd/ingest"
)

// Deliverer is the delivery core as the milter uses it (ingest.Core).
type Deliverer interface {
	Deliver(ctx context.Context, env ingest.Envelope, r io.Reader, fwd ingest.Forwarder) (ingest.Result, error)
}

var _ Deliverer = (*ingest.Core)(nil)

// Options bound what one message may cost.
type Options struct {
	MaxMessageBytes int64         // the rebuilt message, headers included (smtp.max_message_bytes)
	MaxRecipients   int           // per transaction (smtp.max_recipients)
	DeliverTimeout  time.Duration // from the first header to the core's answer (smtp.data_timeout)
	// ReadTimeout and WriteTimeout bound each milter packet; Postfix's own
	// milter_*_timeout are the ones that decide a slow transaction.
	ReadTimeout, WriteTimeout time.Duration
	Logger                    *slog.Logger
	Metrics                   *Metrics // may be nil
}

// Server serves the milter protocol on listeners.
type Server struct {
	srv      *gomilter.Server
	core     Deliverer
	opts     Options
	closing  atomic.Bool    // Shutdown has begun: no new deliveries
	inflight sync.WaitGroup // deliveries the core is working on
}

// protocol is what the milter asks of the MTA. HDR_LEADSPC is required: it
// makes Postfix send each header value exactly as queued (with the space
// after the colon), which is what lets the archive hold the queued bytes. An
// MTA that does not offer it fails the negotiation, and Postfix applies
// milter_default_action (tempfail) instead of passing mail unarchived.
// Nothing is asked that the milter does not need: no connect, HELO, DATA or
// unknown-command events.
const protocol = gomilter.OptHeaderLeadingSpace | gomilter.OptNoConnect | gomilter.OptNoHelo |
	gomilter.OptNoData | gomilter.OptNoUnknown |
	gomilter.OptNoMailReply | gomilter.OptNoEOHReply

// New returns a Server that delivers through core.
func New(opts Options, core Deliverer) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{core: core, opts: opts}
	srvOpts := []gomilter.Option{
		gomilter.WithMaximumVersion(6),
		gomilter.WithProtocols(protocol),
		gomilter.WithActions(0), // the milter never modifies a message
		gomilter.WithMilter(func() gomilter.Milter { return &session{s: s} }),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
	}
	if opts.ReadTimeout > 0 {
		srvOpts = append(srvOpts, gomilter.WithReadTimeout(opts.ReadTimeout))
	}
	if opts.WriteTimeout > 0 {
		srvOpts = append(srvOpts, gomilter.WithWriteTimeout(opts.WriteTimeout))
	}
	s.srv = gomilter.NewServer(srvOpts...)
	return s
}

// Serve accepts milter connections on ln until Close or Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits, until ctx ends, for open milter
// connections to finish. A transaction cut short by the deadline was never
// answered accept, so Postfix applies milter_default_action (tempfail) and
// retries it.
//
// Postfix keeps a milter connection open for its whole SMTP session, idle
// between transactions, so Shutdown does not wait for connections: it
// refuses new messages (451), waits for the deliveries under way, then
// closes everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	drained := make(chan struct{})
	go func() { s.inflight.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("milter: shutdown: %w", ctx.Err())
	}
	if cerr := s.srv.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("milter: shutdown: %w", cerr)
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }

// Replies Postfix passes to its SMTP client. The text never carries internal
// detail; the cause goes to the log.
type reply struct {
	code uint16
	text string
}

var (
	replyTransient    = reply{451, "4.3.0 Temporary failure, please retry"}
	replyStoreFailed  = reply{451, "4.3.0 Archive temporarily unavailable, please retry"}
	replyKeysFailed   = reply{451, "4.3.0 Key service temporarily unavailable, please retry"}
	replyTimeout      = reply{451, "4.4.2 Timeout while archiving, please retry"}
	replyTooBig       = reply{552, "5.3.4 Message exceeds the size limit"}
	replyLineTooLong  = reply{500, "5.5.2 Line too long"}
	replyTooManyRcpts = reply{452, "4.5.3 Too many recipients"}
	replyShuttingDown = reply{421, "4.3.2 Service shutting down, please retry"}
)

func (r reply) response() *gomilter.Response {
	resp, err := gomilter.RejectWithCodeAndReason(r.code, r.text)
	if err != nil { // the replies above are all valid
		panic(fmt.Sprintf("milter: reply %d %q: %v", r.code, r.text, err))
	}
	return resp
}

// toReply translates a delivery failure. Anything not known to be permanent
// is a 451: a retry loses nothing, a bounce loses mail.
func toReply(err error) reply {
	var ie *ingest.Error
	if !errors.As(err, &ie) {
		return replyTransient
	}
	switch ie.Kind {
	case ingest.KindKeys:
		return replyKeysFailed
	case ingest.KindStore:
		return replyStoreFailed
	case ingest.KindTimeout:
		return replyTimeout
	case ingest.KindTooBig:
		return replyTooBig
	case ingest.KindLineTooLong:
		return replyLineTooLong
	}
	return replyTransient
}

// esmtpFlags reads what MAIL FROM's ESMTP arguments say about the body.
func esmtpFlags(env *ingest.Envelope, args string) {
	for _, a := range strings.Fields(args) {
		switch k, v, _ := strings.Cut(a, "="); strings.ToUpper(k) {
		case "SMTPUTF8":
			env.SMTPUTF8 = true
		case "BODY":
			env.Body8BitMIME = strings.EqualFold(v, "8BITMIME")
		}
	}
}

// appendHeader appends one header field as it stands in the queued message:
// name, colon, the value exactly as sent (HDR_LEADSPC keeps its leading
// space), CRLF. A folded value arrives with its line breaks as LF (Postfix)
// or CRLF (other MTAs); both become CRLF.
func appendHeader(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ':')
	for {
		i := strings.IndexByte(value, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSuffix(value[:i], "\r")
		b = append(b, line...)
		b = append(b, '\r', '\n')
		value = value[i+1:]
	}
	b = append(b, value...)
	return append(b, '\r', '\n')
}

// crlfBody keeps body chunks in CRLF form: the milter protocol carries CRLF,
// but a bare LF from an MTA that sends one becomes CRLF so the archived
// stream is always canonical. It tracks a CR that ends one chunk.
type crlfBody struct{ lastCR bool }

func (c *crlfBody) convert(dst, chunk []byte) []byte {
	if bytes.IndexByte(chunk, '\n') < 0 {
		if len(chunk) > 0 {
			c.lastCR = chunk[len(chunk)-1] == '\r'
		}
		return append(dst, chunk...)
	}
	for _, ch := range chunk {
		if ch == '\n' && !c.lastCR {
			dst = append(dst, '\r')
		}
		dst = append(dst, ch)
		c.lastCR = ch == '\r'
	}
	return dst
}
