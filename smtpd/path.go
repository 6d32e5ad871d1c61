package smtpd

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// errUnwritablePath is an address that cannot be written as an RFC 5321
// path: the client gets a 5xx at MAIL or RCPT, and nothing is forwarded.
var errUnwritablePath = errors.New("address cannot be written as an SMTP path")

// smtpPath returns addr in the form RFC 5321 4.1.2 writes it between the
// angle brackets of MAIL FROM or RCPT TO.
//
// go-smtp hands the session an address with the quotes of a Quoted-string
// local part removed: RCPT TO:<"bob> NOTIFY=NEVER"@x> arrives as
// `bob> NOTIFY=NEVER@x`. Written back bare, the next hop would read a
// different address followed by ESMTP parameters of the client's choosing.
// So a local part that is not a Dot-string is quoted again (with `"` and `\`
// escaped), and what no path can carry — control characters, a malformed
// domain, non-ASCII without SMTPUTF8 — is refused.
func smtpPath(addr string, smtputf8 bool) (string, error) {
	if addr == "" {
		return "", nil // the null reverse-path <>
	}
	if !utf8.ValidString(addr) || len(addr) > 512 {
		return "", errUnwritablePath
	}
	local, domain := addr, ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local, domain = addr[:at], addr[at+1:]
		if !validDomain(domain, smtputf8) {
			return "", errUnwritablePath
		}
		domain = "@" + domain
	}
	if local == "" {
		return "", errUnwritablePath
	}
	if dotString(local, smtputf8) {
		return local + domain, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range local {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r >= 0x80 && smtputf8:
			b.WriteRune(r)
		default:
			return "", errUnwritablePath
		}
	}
	b.WriteByte('"')
	return b.String() + domain, nil
}

// dotString reports whether s is an RFC 5321 Dot-string: atoms of atext
// (plus UTF-8 with SMTPUTF8, RFC 6531) separated by single dots.
func dotString(s string, smtputf8 bool) bool {
	for atom := range strings.SplitSeq(s, ".") {
		if atom == "" {
			return false
		}
		for _, r := range atom {
			if !atext(r) && !(smtputf8 && r >= 0x80) {
				return false
			}
		}
	}
	return true
}

func atext(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// validDomain checks a Domain or an address-literal (RFC 5321 4.1.2/4.1.3):
// letter-digit-hyphen labels (U-labels with SMTPUTF8), or "[...]" of
// printable ASCII without brackets or backslashes inside.
func validDomain(d string, smtputf8 bool) bool {
	if len(d) >= 2 && d[0] == '[' && d[len(d)-1] == ']' {
		for i := 1; i < len(d)-1; i++ {
			if c := d[i]; c < 0x21 || c > 0x7e || c == '[' || c == ']' || c == '\\' {
				return false
			}
		}
		return len(d) > 2
	}
	if d == "" || len(d) > 255 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' ||
				smtputf8 && r >= 0x80
			if !ok {
				return false
			}
		}
	}
	return true
}
