// Package restore owns re-sending an archived message: it reads the message
// exactly as received and hands it, CRLF-normalised as the delivery core's
// forwarder does, to the next hop (forward.next_hop: Postfix's re-injection
// port, whose mail is not archived again) for one recipient.
//
// restore never decides who may restore what or to whom (retrieval does),
// never alters the message and never writes the audit log.
//
// The envelope sender is the null sender (<>): a restore is the vault
// handing a copy back, and a bounce of it must not go to the original
// sender, who may be outside the organisation and never asked for it.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/smtpd"
)

// Reply is the next hop's answer to a restore: its SMTP reply code,
// enhanced status code ("" if it gave none) and text.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced_code"`
	Text     string `json:"text"`
}

// OK reports whether the next hop took the message.
func (r Reply) OK() bool { return r.Code >= 200 && r.Code < 300 }

// Sender re-sends archived messages to the next hop.
type Sender struct {
	Vault   *archive.Vault
	Keys    sealer.KeyProvider
	NextHop string        // host:port
	Timeout time.Duration // the whole transaction; 5 minutes if 0
	// HeloName is the name the client greets with; "localhost" if "".
	HeloName string
}

// Restore sends archived message id to the single recipient to. A next hop
// that answers (taking the message or refusing it) gives a Reply and a nil
// error; the error is for everything else (the message cannot be read, the
// next hop cannot be reached or breaks off), and then the Reply holds the
// refusal if there was one.
func (s *Sender) Restore(ctx context.Context, id, to string) (Reply, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := sealed.Open(ctx, s.Vault, s.Keys, id)
	if err != nil {
		return Reply{}, fmt.Errorf("restore: open %s: %w", id, err)
	}
	defer msg.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.NextHop)
	if err != nil {
		return Reply{}, fmt.Errorf("restore: dial %s: %w", s.NextHop, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A cancelled request ends the transaction without a final dot: the
	// next hop then discards what it got.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := smtp.NewClient(conn)
	defer c.Close()
	helo := s.HeloName
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return replyOf(err), fmt.Errorf("restore: %s: EHLO: %w", s.NextHop, err)
	}
	if err := c.Mail("", &smtp.MailOptions{Size: msg.Size()}); err != nil {
		return refused(err, "MAIL FROM", s.NextHop)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return refused(err, "RCPT TO", s.NextHop)
	}
	dc, err := c.Data()
	if err != nil {
		return refused(err, "DATA", s.NextHop)
	}
	rc, err := msg.NewReader(ctx, 0, -1)
	if err != nil {
		return Reply{}, fmt.Errorf("restore: read %s: %w", id, err)
	}
	defer rc.Close()
	cw := smtpd.NewCRLFWriter(dc)
	n, err := io.Copy(cw, rc)
	if err == nil && n != msg.Size() {
		err = fmt.Errorf("read %d bytes, want %d", n, msg.Size())
	}
	if err == nil {
		err = cw.Flush()
	}
	if err != nil {
		// No final dot: closing the connection (the deferred Close) makes
		// the next hop discard the partial message.
		return Reply{}, fmt.Errorf("restore: send %s: %w", id, err)
	}
	resp, err := dc.CloseWithResponse()
	if err != nil {
		return refused(err, "end of DATA", s.NextHop)
	}
	_ = c.Quit()
	return okReply(resp.StatusText), nil
}

// refused turns the next hop's refusal of a command into a Reply; anything
// that is not a reply is an error.
func refused(err error, op, hop string) (Reply, error) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return replyOf(se), nil
	}
	return Reply{}, fmt.Errorf("restore: %s: %s: %w", hop, op, err)
}

func replyOf(err error) Reply {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return Reply{}
	}
	r := Reply{Code: se.Code, Text: se.Message}
	if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
		r.Enhanced = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return r
}

// okReply is the reply to the final dot, whose code go-smtp does not keep
// (it is 250: anything else is an *smtp.SMTPError). An enhanced code at the
// start of the text is split off.
func okReply(text string) Reply {
	r := Reply{Code: 250, Text: text}
	if code, rest, ok := strings.Cut(text, " "); ok && isEnhanced(code) {
		r.Enhanced, r.Text = code, rest
	}
	return r
}

func isEnhanced(s string) bool {
	f := strings.Split(s, ".")
	if len(f) != 3 {
		return false
	}
	for _, x := range f {
		if _, err := strconv.Atoi(x); err != nil || x == "" || len(x) > 3 {
			return false
		}
	}
	return true
}
