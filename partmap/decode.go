package partmap

import (
	"errors"
	"io"
	"slices"
	"strings"
)

// errBadBase64 is what a base64 part body that does not decode gives: as a
// read error from Decode, and as the Broken reason of the part map.
var errBadBase64 = errors.New("mime: malformed base64")

// Decode transfer-decodes a part body read from r: base64 (whitespace and
// line breaks anywhere are ignored), quoted-printable (RFC 2045, leniently:
// see qpDecoder); 7bit, 8bit, binary and anything unknown pass through. The
// Scanner counts DecodedSize with the same decoders, so reading the reader
// returned for raw[Offset:Offset+Length] to its end gives exactly
// DecodedSize bytes. Malformed base64 surfaces as a read error after the
// bytes that decoded before it.
func Decode(r io.Reader, transferEncoding string) io.Reader {
	kind := decoderKind(transferEncoding)
	if kind == identity {
		return r
	}
	return &decodeReader{r: r, dec: transferDecoder{kind: kind}}
}

type encodingKind uint8

const (
	identity encodingKind = iota
	base64Kind
	qpKind
)

func decoderKind(te string) encodingKind {
	switch strings.ToLower(strings.TrimSpace(te)) {
	case "base64":
		return base64Kind
	case "quoted-printable":
		return qpKind
	}
	return identity
}

// transferDecoder is a streaming decoder with constant state. decode and
// finish append decoded bytes to dst and never grow it beyond
// len(dst)+len(src)+maxDecodeSlack.
type transferDecoder struct {
	kind encodingKind
	b64  b64Decoder
	qp   qpDecoder
}

// maxDecodeSlack bounds how much more output than input one decode call can
// give: the quoted-printable decoder may release held-back whitespace.
const maxDecodeSlack = qpMaxPendingWS + 4

func (d *transferDecoder) decode(dst, src []byte) []byte {
	switch d.kind {
	case base64Kind:
		return d.b64.decode(dst, src)
	case qpKind:
		return d.qp.decode(dst, src)
	}
	return append(dst, src...)
}

func (d *transferDecoder) finish(dst []byte) []byte {
	switch d.kind {
	case base64Kind:
		return d.b64.finish(dst)
	case qpKind:
		return d.qp.finish(dst)
	}
	return dst
}

func (d *transferDecoder) err() error {
	if d.kind == base64Kind {
		return d.b64.err
	}
	return nil
}

type decodeReader struct {
	r   io.Reader
	dec transferDecoder
	in  []byte
	buf []byte
	out []byte // decoded and not yet returned
	err error  // returned once out is drained
}

const decodeChunk = 32 << 10

func (d *decodeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.in == nil {
			d.in = make([]byte, decodeChunk)
			d.buf = make([]byte, 0, decodeChunk+maxDecodeSlack)
		}
		n, err := d.r.Read(d.in)
		d.out = d.dec.decode(d.buf[:0], d.in[:n])
		switch {
		case err == io.EOF:
			d.out = d.dec.finish(d.out)
			d.err = io.EOF
		case err != nil:
			d.err = err
		}
		if derr := d.dec.err(); derr != nil {
			d.err = derr
		}
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

// # Base64

const (
	b64Space   = 0xfe
	b64Invalid = 0xff
	b64Pad     = 0xfd
)

var b64Table = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Invalid
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	for _, c := range []byte(" \t\r\n\v\f") {
		t[c] = b64Space
	}
	t['='] = b64Pad
	return t
}()

// b64Decoder decodes base64 (RFC 2045 6.8) a byte at a time. Whitespace is
// skipped anywhere. Padding ends a group; a new group may start after it (some
// mailers concatenate separately encoded blocks) and surplus '=' after a
// complete group is ignored. A group left unpadded at the end decodes as far
// as it goes. Any other byte, or a '=' where no padding can be, is an error:
// decoding stops there and what decoded before it stands.
type b64Decoder struct {
	acc  uint32 // sextets of the current group
	n    int    // sextets in acc
	pad  int    // '=' seen in the current group
	done bool   // the last group was closed by padding
	err  error
}

func (d *b64Decoder) decode(dst, src []byte) []byte {
	if d.err != nil {
		return dst
	}
	for i := 0; i < len(src); i++ {
		v := b64Table[src[i]]
		if v < 64 {
			if d.pad > 0 {
				d.err = errBadBase64
				return dst
			}
			d.done = false
			d.acc = d.acc<<6 | uint32(v)
			d.n++
			if d.n == 4 {
				dst = append(dst, byte(d.acc>>16), byte(d.acc>>8), byte(d.acc))
				d.n, d.acc = 0, 0
				var rest []byte
				dst, rest = d.fast(dst, src[i+1:])
				i = len(src) - len(rest) - 1
			}
			continue
		}
		switch v {
		case b64Space:
		case b64Pad:
			switch {
			case d.n == 0 && d.pad == 0 && d.done:
				// Surplus padding after a complete group.
			case d.n == 2 && d.pad == 0:
				d.pad = 1
			case d.n == 2 && d.pad == 1:
				dst = append(dst, byte(d.acc>>4))
				d.n, d.acc, d.pad, d.done = 0, 0, 0, true
			case d.n == 3 && d.pad == 0:
				dst = append(dst, byte(d.acc>>10), byte(d.acc>>2))
				d.n, d.acc, d.pad, d.done = 0, 0, 0, true
			default:
				d.err = errBadBase64
				return dst
			}
		default:
			d.err = errBadBase64
			return dst
		}
	}
	return dst
}

// fast decodes whole groups of four alphabet bytes from the start of src and
// returns the rest.
func (d *b64Decoder) fast(dst, src []byte) ([]byte, []byte) {
	groups := len(src) / 4
	if groups == 0 {
		return dst, src
	}
	o := len(dst)
	dst = slices.Grow(dst, groups*3)[:o+groups*3]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		s := src[i : i+8 : i+8]
		a, b, c, e := b64Table[s[0]], b64Table[s[1]], b64Table[s[2]], b64Table[s[3]]
		f, g, h, k := b64Table[s[4]], b64Table[s[5]], b64Table[s[6]], b64Table[s[7]]
		if a|b|c|e|f|g|h|k >= 64 {
			break
		}
		v := uint64(a)<<42 | uint64(b)<<36 | uint64(c)<<30 | uint64(e)<<24 |
			uint64(f)<<18 | uint64(g)<<12 | uint64(h)<<6 | uint64(k)
		t := dst[o : o+6 : o+6]
		t[0], t[1], t[2], t[3], t[4], t[5] = byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		o += 6
	}
	for ; i+4 <= len(src); i += 4 {
		s := src[i : i+4 : i+4]
		a, b, c, e := b64Table[s[0]], b64Table[s[1]], b64Table[s[2]], b64Table[s[3]]
		if a|b|c|e >= 64 {
			break
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
		t := dst[o : o+3 : o+3]
		t[0], t[1], t[2] = byte(v>>16), byte(v>>8), byte(v)
		o += 3
	}
	return dst[:o], src[i:]
}

func (d *b64Decoder) finish(dst []byte) []byte {
	if d.err != nil {
		return dst
	}
	switch d.n {
	case 1:
		d.err = errBadBase64
	case 2:
		dst = append(dst, byte(d.acc>>4))
	case 3:
		dst = append(dst, byte(d.acc>>10), byte(d.acc>>2))
	}
	d.n, d.acc, d.pad = 0, 0, 0
	return dst
}

// # Quoted-printable

// qpMaxPendingWS bounds the whitespace the quoted-printable decoder holds
// back to see whether it ends its line (and is dropped). A longer run is let
// through as data, except its last byte.
const qpMaxPendingWS = 256

type qpState uint8

const (
	qpText  qpState = iota
	qpEq            // after '='
	qpEqWS          // after '=' and whitespace: a soft line break if the line ends here
	qpEqHex         // after '=' and one hex digit
)

// qpDecoder decodes quoted-printable (RFC 2045 6.7) a byte at a time, with
// the results of mime/quotedprintable on what that package accepts: "=XX"
// (either case) is a byte, "=" ending a line (before any trailing
// whitespace) is a soft line break, trailing whitespace (space, tab, CR) on a
// line is dropped and a line ends in CRLF if its last byte before the LF was
// CR, else in LF. Unlike mime/quotedprintable it never fails: an "=" that
// starts no escape is kept literally, control bytes pass through, and lines
// may be of any length (the stdlib reader fails past 4096 bytes).
type qpDecoder struct {
	st  qpState
	h1  byte
	nws int // pending whitespace: ws[:nws]
	ws  [qpMaxPendingWS]byte
}

func isQPSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

func (d *qpDecoder) decode(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch d.st {
		case qpText:
			switch {
			case c == '\n':
				dst = d.newline(dst)
			case isQPSpace(c):
				dst = d.holdSpace(dst, c, false)
			case c == '=':
				dst = d.releaseSpace(dst)
				d.st = qpEq
			default:
				dst = d.releaseSpace(dst)
				// Fast path: a run of plain bytes.
				j := i + 1
				for j < len(src) && qpPlain[src[j]] {
					j++
				}
				dst = append(dst, src[i:j]...)
				i = j - 1
			}
		case qpEq:
			switch {
			case isHex(c):
				d.h1 = c
				d.st = qpEqHex
			case c == '\n':
				d.st = qpText // soft line break
			case isQPSpace(c):
				d.st = qpEqWS
				d.ws[0], d.nws = c, 1
			default:
				dst = append(dst, '=')
				d.st = qpText
				i-- // again, as text
			}
		case qpEqWS:
			switch {
			case c == '\n':
				d.nws = 0
				d.st = qpText // soft line break
			case isQPSpace(c):
				dst = d.holdSpace(dst, c, true)
			default:
				dst = append(dst, '=')
				dst = d.releaseSpace(dst)
				d.st = qpText
				i--
			}
		case qpEqHex:
			if isHex(c) {
				dst = append(dst, unhex(d.h1)<<4|unhex(c))
				d.st = qpText
				continue
			}
			dst = append(dst, '=', d.h1)
			d.st = qpText
			i--
		}
	}
	return dst
}

// holdSpace holds back one whitespace byte. When the held run is full, all
// but its last byte go out as data (after the '=' it followed, if eq).
func (d *qpDecoder) holdSpace(dst []byte, c byte, eq bool) []byte {
	if d.nws == qpMaxPendingWS {
		if eq {
			dst = append(dst, '=')
			d.st = qpText
		}
		dst = append(dst, d.ws[:d.nws-1]...)
		d.ws[0], d.nws = d.ws[d.nws-1], 1
	}
	d.ws[d.nws] = c
	d.nws++
	return dst
}

func (d *qpDecoder) releaseSpace(dst []byte) []byte {
	if d.nws > 0 {
		dst = append(dst, d.ws[:d.nws]...)
		d.nws = 0
	}
	return dst
}

func (d *qpDecoder) newline(dst []byte) []byte {
	crlf := d.nws > 0 && d.ws[d.nws-1] == '\r'
	d.nws = 0
	if crlf {
		return append(dst, '\r', '\n')
	}
	return append(dst, '\n')
}

func (d *qpDecoder) finish(dst []byte) []byte {
	if d.st == qpEqHex {
		dst = append(dst, '=', d.h1)
	}
	// Trailing whitespace and a final soft line break are dropped.
	d.st = qpText
	d.nws = 0
	return dst
}

var qpPlain = func() (t [256]bool) {
	for i := range t {
		c := byte(i)
		t[i] = c != '\n' && c != '=' && !isQPSpace(c)
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
