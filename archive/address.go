package archive

import (
	"strings"

	"golang.org/x/net/idna"
)

// NormalizeAddress is the form addresses are compared and indexed in. It
// folds only what mail systems treat as the same mailbox:
//
//   - surrounding space and one pair of enclosing angle brackets go;
//   - a quoted local part is unquoted (RFC 5321 4.1.2: "bob"@x and bob@x
//     are one mailbox), backslash escapes undone;
//   - the local part is lower-cased in ASCII only. RFC 5321 lets a server
//     treat "User" and "user" as different mailboxes, but no server this
//     daemon fronts does, and indexing them apart would hide mail from its
//     owner. Non-ASCII letters are left alone: Unicode case mapping folds
//     distinct characters together (U+0130 "İ" lower-cases to "i", the
//     Kelvin sign to "k"), which would put mail to alİce@x in alice@x's
//     view;
//   - the domain is converted to its IDNA A-label form (UTS #46 mapping,
//     which also folds its case), so bücher.example and
//     xn--bcher-kva.example are one domain; a domain that is not a valid
//     IDN, or an address literal, is lower-cased in ASCII only.
//
// A "+tag" is kept: user+tag@example.com and user@example.com are different
// mailboxes here, and a user who wants both lists both. The null sender
// "<>" normalises to "".
func NormalizeAddress(addr string) string {
	a := strings.TrimSpace(addr)
	if len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>' {
		a = strings.TrimSpace(a[1 : len(a)-1])
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return asciiLower(unquoteLocal(a))
	}
	local, domain := a[:at], a[at+1:]
	return asciiLower(unquoteLocal(local)) + "@" + normalizeDomain(domain)
}

// unquoteLocal returns the value of a quoted-string local part, or s as it
// is when s is not one.
func unquoteLocal(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	inner := s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\' && i+1 < len(inner):
			i++
			b.WriteByte(inner[i])
		case c == '\\' || c == '"':
			return s // not a well-formed quoted string: keep it whole
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func normalizeDomain(d string) string {
	if strings.HasPrefix(d, "[") {
		return asciiLower(d) // address literal
	}
	if a, err := idna.Lookup.ToASCII(d); err == nil && a != "" {
		return a
	}
	return asciiLower(d)
}

// asciiLower lower-cases A-Z and nothing else.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
