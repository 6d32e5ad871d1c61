package smtpd

import (
	"errors"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/ingest"
)

// Replies Postfix sees. The text never carries internal detail: causes go to
// the log, classified once here at the edge.
var (
	// An address go-smtp accepted but no RFC 5321 path can carry (see
	// smtpPath): forwarding it would change its meaning, so it is refused
	// before anything reaches the next hop or the archive.
	replyBadSender = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Sender address cannot be relayed as written"}
	replyBadRecipient = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Recipient address cannot be relayed as written"}
	replyTransient = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure, please retry"}
	replyStoreFailed = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Archive temporarily unavailable, please retry"}
	replyKeysFailed = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Key service temporarily unavailable, please retry"}
	replyNextHopDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1},
		Message: "Next hop temporarily unavailable, please retry"}
	replyTimeout = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Timeout while relaying, please retry"}
	replyTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message exceeds the size limit"}
	replyLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Line too long"}
	replyShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "Service shutting down, please retry"}
)

// toReply translates a delivery failure into what the SMTP client sees.
// Anything that is not known to be permanent is a 451: a retry loses
// nothing, a bounce loses mail.
func toReply(err error) *smtp.SMTPError {
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
	case ingest.KindNextHop:
		return nextHopReply(ie.Err)
	}
	return replyTransient
}

// nextHopReply maps an error from the next hop. A 5xx is passed through (the
// next hop said retrying cannot help); a 4xx is passed through as a 4xx; a
// broken connection or timeout is a 451.
func nextHopReply(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		switch se.Code / 100 {
		case 5:
			return &smtp.SMTPError{Code: se.Code, EnhancedCode: codeOr(se.EnhancedCode, 5), Message: "Next hop: " + printable(se.Message)}
		case 4:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Next hop: " + printable(se.Message)}
		}
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return replyTimeout
	}
	return replyNextHopDown
}

func codeOr(c smtp.EnhancedCode, class int) smtp.EnhancedCode {
	if c == smtp.NoEnhancedCode || c == smtp.EnhancedCodeNotSet || c[0] != class {
		return smtp.EnhancedCode{class, 0, 0}
	}
	return c
}

// printable keeps a next hop's reply text safe to repeat: printable ASCII,
// one line, bounded.
func printable(s string) string {
	b := make([]byte, 0, min(len(s), 200))
	for i := 0; i < len(s) && len(b) < 200; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		} else if c == '\n' || c == '\r' {
			b = append(b, ' ')
		}
	}
	return string(b)
}
