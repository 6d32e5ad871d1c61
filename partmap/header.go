package partmap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// Caps on what a Part or the Header summary keeps of a header value, so
// that MaxParts records stay small whatever the headers hold.
const (
	maxSummaryBytes  = 4 << 10 // each Header field, after decoding
	maxFilenameBytes = 1 << 10
	maxTokenBytes    = 64 // charset, transfer encoding, disposition
	maxMediaType     = 255
	maxBoundary      = 200 // RFC 2046 says 70; some mailers go further
	max2231Sections  = 100 // filename*0 .. filename*99
)

// headerParser turns the raw lines of one header, as the Scanner kept them
// (every line a field or a continuation, CRLF-terminated), into fields.
type headerParser struct {
	rd bytes.Reader
	br *bufio.Reader
}

func (p *headerParser) parse(raw []byte) textproto.Header {
	p.rd.Reset(raw)
	if p.br == nil {
		p.br = bufio.NewReader(&p.rd)
	} else {
		p.br.Reset(&p.rd)
	}
	// The Scanner fed only well-formed lines; should ReadHeader still stop
	// early, the fields it read so far are what we have.
	h, _ := textproto.ReadHeader(p.br)
	return h
}

// partInfo is what a part's header says about its body.
type partInfo struct {
	mediaType   string // lowercased type/subtype, "" if absent or malformed
	boundary    string
	charset     string
	encoding    string
	disposition string
	filename    string
}

func readPartInfo(h *textproto.Header) partInfo {
	var pi partInfo
	ct, ctParams := parseValue(h.Get("Content-Type"))
	if validMediaType(ct) {
		pi.mediaType = ct
		pi.boundary = ctParams["boundary"]
	}
	pi.charset = token(ctParams["charset"])
	pi.encoding = token(firstWord(h.Get("Content-Transfer-Encoding")))
	disp, dParams := parseValue(h.Get("Content-Disposition"))
	if isToken(disp) && len(disp) <= maxTokenBytes {
		pi.disposition = disp
	}
	name := dParams["filename"]
	if name == "" {
		name = ctParams["name"]
	}
	pi.filename = cleanFilename(name)
	return pi
}

func summarize(h *textproto.Header) Header {
	return Header{
		From:      summaryField(h.Get("From")),
		To:        summaryField(h.Get("To")),
		Cc:        summaryField(h.Get("Cc")),
		Subject:   summaryField(h.Get("Subject")),
		Date:      summaryField(h.Get("Date")),
		MessageID: summaryField(h.Get("Message-Id")),
	}
}

func summaryField(v string) string {
	return capUTF8(decodeWords(v), maxSummaryBytes)
}

// decodeWords decodes RFC 2047 encoded-words. A value with a word in a
// charset we cannot convert is kept as it was; the result is valid UTF-8.
func decodeWords(v string) string {
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// capUTF8 cuts s to at most n bytes without splitting a rune.
func capUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// cleanFilename decodes a filename parameter and keeps its last path
// element, without control characters.
func cleanFilename(name string) string {
	if name == "" {
		return ""
	}
	name = decodeWords(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	return capUTF8(name, maxFilenameBytes)
}

// firstWord is the value up to the first space, ';' or '(' (a comment).
func firstWord(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, " \t\r\n;("); i >= 0 {
		v = v[:i]
	}
	return v
}

// token lowercases v and returns it if it is a short MIME token, else "".
func token(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if len(v) > maxTokenBytes || !isToken(v) {
		return ""
	}
	return v
}

// tspecials are the characters RFC 2045 does not allow in a token.
const tspecials = `()<>@,;:\"/[]?=`

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(tspecials, c) >= 0 {
			return false
		}
	}
	return true
}

func validMediaType(mt string) bool {
	if len(mt) > maxMediaType {
		return false
	}
	t, sub, ok := strings.Cut(mt, "/")
	return ok && isToken(t) && isToken(sub)
}

func validBoundary(b string) bool {
	return b != "" && len(b) <= maxBoundary && !strings.ContainsAny(b, "\r\n")
}

// # Parameters

// parseValue splits a Content-Type or Content-Disposition value into its
// lowercased main value and its parameters, with lowercased names. It
// follows RFC 2045 and RFC 2231 (continuations, charset'language'%XX) and,
// unlike mime.ParseMediaType, gives up on nothing: an unquoted value runs to
// the next ';' whatever it holds, junk after a quoted string is skipped, a
// repeated parameter keeps its first value, a value without a name is
// dropped. A value with spaces in its main part ("text/html charset=x", a
// missing ';') keeps its first word.
func parseValue(v string) (string, map[string]string) {
	main, rest, _ := strings.Cut(v, ";")
	main = strings.ToLower(firstWord(main))
	if rest == "" {
		return main, nil
	}
	params := make(map[string]string)
	var ext map[string]*param2231
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t\r\n;")
		if rest == "" {
			break
		}
		i := strings.IndexAny(rest, "=;")
		if i < 0 {
			break
		}
		if rest[i] == ';' {
			rest = rest[i+1:]
			continue
		}
		name := strings.ToLower(strings.TrimSpace(rest[:i]))
		rest = strings.TrimLeft(rest[i+1:], " \t\r\n")
		var val string
		if strings.HasPrefix(rest, `"`) {
			val, rest = unquote(rest)
			if j := strings.IndexByte(rest, ';'); j >= 0 {
				rest = rest[j+1:]
			} else {
				rest = ""
			}
		} else {
			j := strings.IndexByte(rest, ';')
			if j < 0 {
				j = len(rest)
			}
			val = strings.TrimSpace(rest[:j])
			rest = rest[min(j+1, len(rest)):]
		}
		if name == "" {
			continue
		}
		if base, section, extended, ok := split2231(name); ok {
			if ext == nil {
				ext = make(map[string]*param2231)
			}
			p := ext[base]
			if p == nil {
				p = &param2231{}
				ext[base] = p
			}
			p.add(section, extended, val)
			continue
		}
		if _, dup := params[name]; !dup {
			params[name] = val
		}
	}
	for base, p := range ext {
		if v, ok := p.value(); ok {
			params[base] = v
		}
	}
	return main, params
}

// unquote reads a quoted-string at the start of s (which begins with '"')
// and returns its content and what follows it. An unterminated string runs
// to the end. As in mime.ParseMediaType, a backslash escapes only a special
// character ('"', '\\', ...): mailers send Windows paths unescaped.
func unquote(s string) (string, string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return b.String(), s[i+1:]
		case c == '\\' && i+1 < len(s) && strings.IndexByte(tspecials, s[i+1]) >= 0:
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// split2231 splits an RFC 2231 parameter name: "name*" (one extended value),
// "name*N" and "name*N*" (sections). ok is false for a plain name.
func split2231(name string) (base string, section int, extended, ok bool) {
	base, rest, found := strings.Cut(name, "*")
	if !found || base == "" {
		return "", 0, false, false
	}
	if rest == "" {
		return base, -1, true, true
	}
	if strings.HasSuffix(rest, "*") {
		extended = true
		rest = rest[:len(rest)-1]
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= max2231Sections || (len(rest) > 1 && rest[0] == '0') {
		return "", 0, false, false
	}
	return base, n, extended, true
}

type section2231 struct {
	val      string
	extended bool
	set      bool
}

// param2231 collects the pieces of one RFC 2231 parameter.
type param2231 struct {
	single   string // name*=
	isSingle bool
	sections []section2231
}

func (p *param2231) add(section int, extended bool, val string) {
	if section < 0 {
		if !p.isSingle {
			p.single, p.isSingle = val, true
		}
		return
	}
	for len(p.sections) <= section {
		p.sections = append(p.sections, section2231{})
	}
	if !p.sections[section].set {
		p.sections[section] = section2231{val: val, extended: extended, set: true}
	}
}

// value assembles the parameter. It reports false if there is nothing
// usable, so that a plain parameter of the same name stands.
func (p *param2231) value() (string, bool) {
	if p.isSingle {
		return decode2231(p.single)
	}
	if len(p.sections) == 0 || !p.sections[0].set {
		return "", false
	}
	var charset string
	var raw []byte
	for i, s := range p.sections {
		if !s.set {
			break
		}
		v := s.val
		if s.extended {
			if i == 0 {
				cs, rest, ok := splitCharset(v)
				if !ok {
					return "", false
				}
				charset, v = cs, rest
			}
			raw = append(raw, percentDecode(v)...)
		} else {
			raw = append(raw, v...)
		}
	}
	return convertCharset(charset, raw)
}

// decode2231 decodes charset'language'%XX%XX.
func decode2231(v string) (string, bool) {
	charset, rest, ok := splitCharset(v)
	if !ok {
		return "", false
	}
	return convertCharset(charset, percentDecode(rest))
}

func splitCharset(v string) (charset, rest string, ok bool) {
	charset, rest, ok = strings.Cut(v, "'")
	if !ok {
		return "", "", false
	}
	_, rest, ok = strings.Cut(rest, "'") // language
	return charset, rest, ok
}

func percentDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

// convertCharset converts raw from charset to UTF-8. An empty charset is
// taken as UTF-8. For a charset we cannot convert it reports false.
func convertCharset(charset string, raw []byte) (string, bool) {
	if charset == "" {
		return strings.ToValidUTF8(string(raw), "\uFFFD"), true
	}
	r, err := charsetReader(charset, bytes.NewReader(raw))
	if err != nil {
		return "", false
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", false
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), true
}

// # Charsets

// The charsets we convert without golang.org/x/text: the Unicode and
// Latin ones that make up most mail that is not UTF-8. Others are kept raw.
var (
	errCharset = errors.New("mime: unsupported charset")

	// windows-1252 0x80-0x9f; the five unassigned bytes map to the C1
	// controls, as in the WHATWG encoding standard.
	cp1252High = [32]rune{
		0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
		0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f,
		0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
		0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
	}
	// iso-8859-15 differs from iso-8859-1 in eight places.
	latin9 = map[byte]rune{
		0xa4: 0x20ac, 0xa6: 0x0160, 0xa8: 0x0161, 0xb4: 0x017d,
		0xb8: 0x017e, 0xbc: 0x0152, 0xbd: 0x0153, 0xbe: 0x0178,
	}
)

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	var conv func(byte) rune
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968":
		return input, nil
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1":
		conv = func(c byte) rune { return rune(c) }
	case "windows-1252", "cp1252", "x-cp1252":
		conv = func(c byte) rune {
			if c >= 0x80 && c < 0xa0 {
				return cp1252High[c-0x80]
			}
			return rune(c)
		}
	case "iso-8859-15", "iso8859-15", "iso_8859-15", "latin9", "latin-9":
		conv = func(c byte) rune {
			if r, ok := latin9[c]; ok {
				return r
			}
			return rune(c)
		}
	default:
		return nil, errCharset
	}
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	out.Grow(len(b))
	for _, c := range b {
		out.WriteRune(conv(c))
	}
	return strings.NewReader(out.String()), nil
}
