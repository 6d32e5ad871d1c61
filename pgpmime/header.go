package pgpmime

import (
	"bytes"
	"strings"
)

const (
	// MaxHeaderBytes bounds the top-level header read by ParseOuterHeaders,
	// Sniff and the protected-headers rewrite; fields beyond it are not seen.
	MaxHeaderBytes = 256 << 10
	// maxFields bounds the fields parsed from one header.
	maxFields = 2000
)

// OuterHeaders are the top-level fields the encrypted message shows in the
// clear. Values are raw field bodies (after "Name:" and its leading space),
// possibly folded with CRLF + space; empty values are left out.
type OuterHeaders struct {
	From      string
	To        string
	Cc        string
	Date      string
	MessageID string
	Subject   string // written only with Options.KeepSubject
}

// ParseOuterHeaders picks the outer fields from the top of a message. b may
// be the header block alone or the start of the whole message; only its
// header (and at most MaxHeaderBytes of it) is read. The first instance of
// each field wins; line endings are normalised to CRLF.
func ParseOuterHeaders(b []byte) OuterHeaders {
	var h OuterHeaders
	end, _, _ := splitHeader(b)
	for _, f := range parseFields(b[:end]) {
		var dst *string
		switch strings.ToLower(f.name) {
		case "from":
			dst = &h.From
		case "to":
			dst = &h.To
		case "cc":
			dst = &h.Cc
		case "date":
			dst = &h.Date
		case "message-id":
			dst = &h.MessageID
		case "subject":
			dst = &h.Subject
		default:
			continue
		}
		if *dst == "" {
			*dst = f.value
		}
	}
	return h
}

// field is one header field: its name and its raw value with line endings
// normalised to CRLF and leading whitespace removed.
type field struct {
	name  string
	value string
	start int // offset of the field's first byte in the header
	end   int // offset just past the field's last line ending
	eol   int // offset of the field's last line ending (CRLF or LF)
}

// splitHeader finds the end of the header in b: end is where the header's
// fields end, body where the body starts (after the empty line), and complete
// is false if b ends (or MaxHeaderBytes is reached) before the header does.
// As in Postfix, a line that is neither a field nor a continuation ends the
// header and starts the body.
func splitHeader(b []byte) (end, body int, complete bool) {
	end, body, complete, _ = scanHeader(b, 0)
	return end, body, complete
}

// scanHeader is splitHeader resuming at off, the start of a line that an
// earlier scan of a shorter b saw nothing in; next is where to resume when b
// has grown (the start of the first incomplete line).
func scanHeader(b []byte, off int) (end, body int, complete bool, next int) {
	limit := min(len(b), MaxHeaderBytes)
	for off < limit {
		nl := bytes.IndexByte(b[off:limit], '\n')
		if nl < 0 {
			return limit, limit, false, off
		}
		line := b[off : off+nl]
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return off, off + nl + 1, true, off
		case line[0] == ' ' || line[0] == '\t':
			if off == 0 {
				return off, off, true, off // a message cannot start with a continuation
			}
		case !isFieldLine(line):
			return off, off, true, off
		}
		off += nl + 1
	}
	return limit, limit, false, off
}

// isFieldLine reports whether line starts with a field name and a colon.
func isFieldLine(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range line[:colon] {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// parseFields splits a header block (as delimited by splitHeader) into
// fields. Incomplete trailing lines are ignored.
func parseFields(h []byte) []field {
	var fields []field
	for off := 0; off < len(h) && len(fields) < maxFields; {
		nl := bytes.IndexByte(h[off:], '\n')
		if nl < 0 {
			break
		}
		line := bytes.TrimSuffix(h[off:off+nl], []byte("\r"))
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if n := len(fields); n > 0 {
				f := &fields[n-1]
				if l := cleanLine(line); !blank(l) {
					// A whitespace-only line is dropped: written out, some
					// parsers would take it for the end of the header.
					f.value += "\r\n" + l
				}
				f.end = off + nl + 1
				f.eol = off + len(line)
			}
			off += nl + 1
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			break
		}
		fields = append(fields, field{
			name:  string(line[:colon]),
			value: strings.TrimLeft(cleanLine(line[colon+1:]), " \t"),
			start: off,
			end:   off + nl + 1,
			eol:   off + len(line),
		})
		off += nl + 1
	}
	for i := range fields {
		fields[i].value = strings.Trim(fields[i].value, " \t\r\n")
	}
	return fields
}

// cleanLine returns one header line with any stray CR or NUL made a space,
// so that a value can never end a line or a header when written out. Other
// bytes, 8-bit ones included, are kept as they are.
func cleanLine(b []byte) string {
	if bytes.IndexByte(b, '\r') < 0 && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	c := []byte(string(b))
	for i, x := range c {
		if x == '\r' || x == 0 {
			c[i] = ' '
		}
	}
	return string(c)
}

// sanitizeValue makes a header value safe to write after "Name: ": every
// line break becomes CRLF followed by whitespace (a continuation line), and
// stray CRs and NULs become spaces. Values from ParseOuterHeaders are already
// in this form; values a caller builds by hand may not be.
func sanitizeValue(v string) string {
	if !strings.ContainsAny(v, "\r\n\x00") {
		return v
	}
	lines := strings.Split(strings.ReplaceAll(v, "\r\n", "\n"), "\n")
	var b strings.Builder
	for i, l := range lines {
		l = cleanLine([]byte(l))
		if i > 0 {
			if blank(l) {
				continue // an empty continuation line would end the header
			}
			b.WriteString("\r\n")
			if l[0] != ' ' && l[0] != '\t' {
				b.WriteByte(' ')
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// blank reports whether a cleaned line holds only spaces and tabs.
func blank(l string) bool { return strings.Trim(l, " \t") == "" }
