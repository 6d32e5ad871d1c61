package smtpd

import (
	"bytes"
	"strings"
)

// go-smtp (v0.25.1) writes many replies itself, in its own words ("Roger,
// accepting mail from <...>", "I'll make sure <...> gets this"), some with
// the wrong code for what happened (502 for a bad sequence, which RFC 5321
// 4.2.4 makes 503). Postfix logs these replies, so the wire layer rewrites
// each of them, matched exactly, into ours: a text that says what happened,
// an RFC 3463 enhanced code, and no client-supplied bytes (no addresses, no
// HELO name). Replies our session returns pass through untouched.

// libraryReplies maps go-smtp's fixed reply lines to ours.
var libraryReplies = map[string]string{
	"250 2.0.0 I have successfully done nothing":          "250 2.0.0 Ok",
	"250 2.0.0 Session reset":                             "250 2.0.0 Ok: transaction reset",
	"252 2.5.0 Cannot VRFY user, but will accept message": "252 2.5.0 Addresses are not verified here; send the message",
	"221 2.0.0 Bye": "221 2.0.0 Closing connection",
	"354 Go ahead. End your data with <CR><LF>.<CR><LF>":        "354 Send the message; end it with <CR><LF>.<CR><LF>",
	"502 5.5.1 Please introduce yourself first.":                "503 5.5.1 Send EHLO or HELO first",
	"502 5.5.1 Missing MAIL FROM command.":                      "503 5.5.1 Send MAIL FROM first",
	"502 5.5.1 Missing RCPT TO command.":                        "503 5.5.1 Send RCPT TO first",
	"501 5.5.2 Domain/address argument required for HELO":       "501 5.5.4 Send a domain or address literal with EHLO or HELO",
	"501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>": "501 5.5.4 Syntax: MAIL FROM:<address>",
	"501 5.5.2 Was expecting RCPT arg syntax of TO:<address>":   "501 5.5.4 Syntax: RCPT TO:<address>",
	"501 5.5.4 Unable to parse MAIL ESMTP parameters":           "501 5.5.4 Malformed MAIL FROM parameters",
	"501 5.5.4 Unable to parse RCPT ESMTP parameters":           "501 5.5.4 Malformed RCPT TO parameters",
	"501 5.5.4 Unable to parse SIZE as an integer":              "501 5.5.4 Malformed SIZE parameter",
	"501 5.5.4 Unknown BODY value":                              "501 5.5.4 BODY must be 7BIT or 8BITMIME",
	"501 5.5.4 Unknown RET value":                               "501 5.5.4 Malformed parameter value",
	"500 5.5.4 Unknown MAIL FROM argument":                      "555 5.5.4 MAIL FROM parameter not recognised",
	"500 5.5.4 Unknown RCPT TO argument":                        "555 5.5.4 RCPT TO parameter not recognised",
	"552 5.3.4 Max message size exceeded":                       "552 5.3.4 Message exceeds the size limit",
	"552 5.3.4 Maximum message size exceeded":                   "552 5.3.4 Message exceeds the size limit",
	"501 5.5.4 DATA command should not have any arguments":      "501 5.5.4 Syntax: DATA, without arguments",
	"500 5.5.2 Error: bad syntax":                               "500 5.5.2 Syntax error: empty command",
	"501 5.5.2 Bad command":                                     "500 5.5.2 Syntax error: command not recognised",
	"500 5.5.1 Too many errors. Quiting now":                    "421 4.7.0 Too many errors, closing connection",
	"500 5.4.0 Too long line, closing connection":               "500 5.5.2 Line too long, closing connection",
	"421 4.4.2 Idle timeout, bye bye":                           "421 4.4.2 Timeout, closing connection",
	"421 4.4.0 Connection error, sorry":                         "421 4.4.0 Connection error, closing connection",
	"421 4.0.0 Internal server error":                           "421 4.3.0 Internal error, closing connection",
	"502 5.5.4 Missing parameter":                               "502 5.5.1 AUTH not offered",
	"523 5.7.10 TLS is required":                                "502 5.5.1 AUTH not offered",
	"502 5.5.1 TLS not supported":                               "502 5.5.1 STARTTLS not offered",
	"500 5.5.1 This is not a LMTP server":                       "500 5.5.1 This is SMTP: send EHLO, not LHLO",
}

// libraryPrefixes rewrites go-smtp's replies that carry a variable part
// (an address, a command name, a number): the variable part is dropped.
var libraryPrefixes = []struct{ prefix, suffix, ours string }{
	{"250 2.0.0 Roger, accepting mail from <", "", "250 2.1.0 Sender ok"},
	{"250 2.0.0 I'll make sure <", "", "250 2.1.5 Recipient ok"},
	{"452 4.5.3 Maximum limit of ", " recipients reached", "452 4.5.3 Too many recipients for this transaction"},
	{"500 5.5.2 Syntax errors, ", " command unrecognized", "500 5.5.2 Command not recognised"},
	{"502 5.5.1 ", " command not implemented", "502 5.5.1 Command not implemented"},
	{"504 5.5.4 ", " is not implemented", "555 5.5.4 Parameter not supported here"},
	{"501 5.5.4 Malformed ", " parameter value", "501 5.5.4 Malformed parameter value"},
	{"500 5.5.4 Malformed ", " parameter value", "501 5.5.4 Malformed parameter value"},
	{"500 5.5.4 Malformed AUTH parameter mailbox", "", "501 5.5.4 Malformed parameter value"},
}

// rewriteReply returns the line to send for a reply line go-smtp wrote
// (without its CRLF), or nil to drop it. hostname is our name.
func rewriteReply(line []byte, hostname string) []byte {
	s := string(line)
	if ours, ok := libraryReplies[s]; ok {
		return []byte(ours)
	}
	switch {
	case s == "250-CHUNKING":
		// BDAT is refused (see wire); never offer it.
		return nil
	case strings.HasPrefix(s, "220 ") && strings.HasSuffix(s, " ESMTP Service Ready"):
		return []byte("220 " + hostname + " ESMTP mailvaultd archive filter")
	case strings.HasPrefix(s, "250-Hello "):
		// The first line of the EHLO reply, which echoed the client's name.
		return []byte("250-" + hostname)
	case strings.HasPrefix(s, "250 2.0.0 Hello "):
		return []byte("250 2.0.0 " + hostname)
	}
	for _, p := range libraryPrefixes {
		if strings.HasPrefix(s, p.prefix) && strings.HasSuffix(s, p.suffix) && len(s) >= len(p.prefix)+len(p.suffix) {
			return []byte(p.ours)
		}
	}
	return line
}

// finalReply reports whether line is the last line of a reply ("250 ..."
// rather than "250-...") and its code.
func finalReply(line []byte) (code string, final bool) {
	if len(line) < 3 {
		return "", false
	}
	return string(line[:3]), len(line) == 3 || line[3] == ' '
}

// bdatVerb reports whether line is a command go-smtp would run as BDAT:
// its parseCmd takes the first four bytes, upper-cased, as the verb when
// the line is four bytes long or has a space after them.
func bdatVerb(line []byte) bool {
	t := bytes.TrimRight(line, "\r\n")
	return len(t) >= 4 && bytes.EqualFold(t[:4], []byte("BDAT")) && (len(t) == 4 || t[4] == ' ')
}
