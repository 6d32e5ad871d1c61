package pgpmime

import (
	"bufio"
	"encoding/base64"
)

// armorWriter is ASCII armour (RFC 4880 section 6) for a PGP MESSAGE block,
// written with CRLF line endings, as mail needs them.
//
// go-crypto has an armour encoder, but it writes LF line endings, computes
// the CRC24 one bit at a time (half the CPU time of an encryption), and with
// the CRC switched off GnuPG 2.2 cannot find the end of a block whose last
// line has no base64 padding. This one always writes the CRC, table-driven.
type armorWriter struct {
	out  *bufio.Writer
	crc  uint32
	raw  [armorRawLine]byte // a partial line of input
	n    int
	line [armorLineLen + 2]byte
}

const (
	armorRawLine = 48                   // input bytes per line
	armorLineLen = armorRawLine / 3 * 4 // 64 base64 characters
	crc24Init    = 0xb704ce
	crc24Poly    = 0x864cfb
)

// The CRC24 register is kept in the top 24 bits of a uint32, so that the
// usual MSB-first slicing-by-4 tables apply: four input bytes per step.
var crc24Tables = func() (t [4][256]uint32) {
	const poly = crc24Poly << 8
	for i := range t[0] {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ poly
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < 4; k++ {
		for i := range t[k] {
			prev := t[k-1][i]
			t[k][i] = prev<<8 ^ t[0][prev>>24]
		}
	}
	return t
}()

// crc24Update continues an OpenPGP CRC24 (crc in the low 24 bits) over p.
func crc24Update(crc uint32, p []byte) uint32 {
	c := crc << 8
	t := &crc24Tables
	for len(p) >= 4 {
		c ^= uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		c = t[3][c>>24] ^ t[2][c>>16&0xff] ^ t[1][c>>8&0xff] ^ t[0][c&0xff]
		p = p[4:]
	}
	for _, b := range p {
		c = c<<8 ^ t[0][c>>24^uint32(b)]
	}
	return c >> 8
}

func newArmorWriter(out *bufio.Writer) *armorWriter {
	out.WriteString("-----BEGIN PGP MESSAGE-----\r\n\r\n")
	a := &armorWriter{out: out, crc: crc24Init}
	a.line[armorLineLen], a.line[armorLineLen+1] = '\r', '\n'
	return a
}

// Write never fails by itself; errors of out surface at its next flush,
// which the caller checks.
func (a *armorWriter) Write(p []byte) (int, error) {
	a.crc = crc24Update(a.crc, p)
	n := len(p)
	if a.n > 0 {
		c := copy(a.raw[a.n:], p)
		a.n += c
		p = p[c:]
		if a.n < armorRawLine {
			return n, nil
		}
		a.writeLine(a.raw[:])
		a.n = 0
	}
	for len(p) >= armorRawLine {
		a.writeLine(p[:armorRawLine])
		p = p[armorRawLine:]
	}
	a.n = copy(a.raw[:], p)
	return n, a.err()
}

func (a *armorWriter) writeLine(raw []byte) {
	base64.StdEncoding.Encode(a.line[:], raw)
	a.out.Write(a.line[:])
}

func (a *armorWriter) err() error {
	_, err := a.out.Write(nil)
	return err
}

// Close writes the last line, the checksum and the armour tail.
func (a *armorWriter) Close() error {
	if a.n > 0 {
		m := base64.StdEncoding.EncodedLen(a.n)
		base64.StdEncoding.Encode(a.line[:m], a.raw[:a.n])
		a.out.Write(a.line[:m])
		a.out.WriteString("\r\n")
		a.n = 0
	}
	var sum [4]byte
	base64.StdEncoding.Encode(sum[:], []byte{byte(a.crc >> 16), byte(a.crc >> 8), byte(a.crc)})
	a.out.WriteString("=" + string(sum[:]) + "\r\n-----END PGP MESSAGE-----\r\n")
	return a.err()
}
