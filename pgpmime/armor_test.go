package pgpmime

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// crc24Reference is the bit-serial CRC24 of RFC 4880 section 6.1.
func crc24Reference(p []byte) uint32 {
	crc := uint32(crc24Init)
	for _, b := range p {
		crc ^= uint32(b) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864cfb
			}
		}
	}
	return crc & 0xffffff
}

func TestCRC24(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		want := crc24Reference(p)
		if got := crc24Update(crc24Init, p); got != want {
			t.Fatalf("len %d: crc %06x, want %06x", n, got, want)
		}
		// Split anywhere: the running CRC continues.
		if n > 0 {
			k := rng.IntN(n)
			if got := crc24Update(crc24Update(crc24Init, p[:k]), p[k:]); got != want {
				t.Fatalf("len %d split at %d: crc %06x, want %06x", n, k, got, want)
			}
		}
	}
}

// TestArmorWriter: every length around the 48-byte line, written in odd
// pieces, decodes (with go-crypto's decoder) to the input; lines are CRLF,
// 64 characters at most; the checksum line is present.
func TestArmorWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 300; n++ {
		in := make([]byte, n)
		for i := range in {
			in[i] = byte(rng.Uint32())
		}
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		a := newArmorWriter(bw)
		for p := in; len(p) > 0; {
			k := min(len(p), 1+rng.IntN(100))
			a.Write(p[:k])
			p = p[k:]
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		checkCRLF(t, out.Bytes())
		lines := strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n")
		if lines[0] != "-----BEGIN PGP MESSAGE-----" || lines[1] != "" || lines[len(lines)-1] != "-----END PGP MESSAGE-----" {
			t.Fatalf("len %d: armour frame %q", n, lines)
		}
		if sum := lines[len(lines)-2]; len(sum) != 5 || sum[0] != '=' {
			t.Fatalf("len %d: checksum line %q", n, sum)
		}
		for _, l := range lines[2 : len(lines)-2] {
			if len(l) > 64 || len(l) == 0 {
				t.Fatalf("len %d: line of %d characters", n, len(l))
			}
		}
		block, err := armor.Decode(&out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(block.Body)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("len %d: decoded %d bytes, %v", n, len(got), err)
		}
	}
}
