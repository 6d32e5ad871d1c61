package partmap

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		te, in, want string
		bad          bool // a read error after want
	}{
		{"base64", "", "", false},
		{"base64", "SGVsbG8=", "Hello", false},
		{"BASE64 ", "SGVs\r\nbG8=\r\n", "Hello", false},
		{"base64", " S G V s\tb G 8 = ", "Hello", false},
		{"base64", "SGVsbG8", "Hello", false},          // unpadded at the end
		{"base64", "SGVsbA=", "Hell", false},           // half the padding
		{"base64", "SGVsbA==\r\nIQ==", "Hell!", false}, // blocks encoded apart
		{"base64", "SGVsbA===", "Hell", false},         // surplus padding
		{"base64", "SGVsbG8*", "Hel", true},            // a group cut short by the error is lost
		{"base64", "SGVs*bG8=", "Hel", true},
		{"base64", "S", "", true},
		{"base64", "SG=V", "", true},
		{"base64", "=", "", true},
		{"base64", "SGVsbA\x00==", "Hel", true},
		{"quoted-printable", "", "", false},
		{"quoted-printable", "a=3Db=3db", "a=b=b", false},
		{"quoted-printable", "soft=\r\nbreak", "softbreak", false},
		{"quoted-printable", "soft= \t\r\nbreak", "softbreak", false},
		{"quoted-printable", "soft=\nbreak\n", "softbreak\n", false},
		{"quoted-printable", "trail  \t\r\nx", "trail\r\nx", false},
		{"quoted-printable", "trail  \nx   ", "trail\nx", false},
		{"quoted-printable", "a =20\r\n", "a  \r\n", false},
		{"quoted-printable", "=ZZ =4 =", "=ZZ =4 ", false},
		{"quoted-printable", "=4", "=4", false},
		{"quoted-printable", "a\x00b\x01", "a\x00b\x01", false},
		{"quoted-printable", "a\rb\r\r\n", "a\rb\r\n", false},
		{"quoted-printable", "==41", "=A", false},
		{"quoted-printable", "=\r\r\nx", "x", false},
		{"7bit", "a=3D\r\n", "a=3D\r\n", false},
		{"8bit", "caf\xe9", "caf\xe9", false},
		{"binary", "\x00\x01", "\x00\x01", false},
		{"", "SGVsbG8=", "SGVsbG8=", false},
		{"x-uuencode", "begin", "begin", false},
	}
	for _, tt := range tests {
		t.Run(tt.te+"/"+tt.in, func(t *testing.T) {
			for _, wrap := range []struct {
				name string
				f    func(io.Reader) io.Reader
			}{
				{"plain", func(r io.Reader) io.Reader { return r }},
				{"OneByteReader", iotest.OneByteReader},
				{"DataErrReader", iotest.DataErrReader},
			} {
				got, err := io.ReadAll(Decode(wrap.f(strings.NewReader(tt.in)), tt.te))
				if string(got) != tt.want || (err != nil) != tt.bad {
					t.Errorf("%s: Decode(%q, %q) = %q, %v; want %q, error %v", wrap.name, tt.in, tt.te, got, err, tt.want, tt.bad)
				}
			}
		})
	}
}

// TestDecodeReadError: an error from the source reaches the reader of
// Decode after the bytes decoded before it.
func TestDecodeReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, te := range []string{"base64", "quoted-printable", "7bit"} {
		r := io.MultiReader(strings.NewReader("QUJD"), iotest.ErrReader(boom))
		got, err := io.ReadAll(Decode(r, te))
		want := "ABC"
		if te != "base64" {
			want = "QUJD"
		}
		if string(got) != want || !errors.Is(err, boom) {
			t.Errorf("%s: %q, %v", te, got, err)
		}
	}
}

// TestDecodeLongLines: quoted-printable lines far over the 4096 bytes that
// mime/quotedprintable takes, and long runs of whitespace.
func TestDecodeLongLines(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	spaces := strings.Repeat(" ", 1000)
	tests := []struct{ in, want string }{
		{long + "=\r\n" + long, long + long},
		{"a" + spaces + "\r\nb", "a\r\nb"},
		{"a" + spaces + "b", "a" + spaces + "b"},
		{"a=" + spaces + "\r\nb", "ab"},
	}
	for i, tt := range tests {
		got, err := io.ReadAll(Decode(strings.NewReader(tt.in), "quoted-printable"))
		// Whitespace runs over qpMaxPendingWS are let through, but for
		// the last byte before a line end.
		if i >= 1 && len(spaces) > qpMaxPendingWS {
			if err != nil || len(got) == 0 {
				t.Errorf("%d: %d bytes, %v", i, len(got), err)
			}
			continue
		}
		if string(got) != tt.want || err != nil {
			t.Errorf("%d: %d bytes, %v", i, len(got), err)
		}
	}
	// Whatever the write sizes, the scanner counts what Decode gives.
	for _, in := range []string{tests[1].in, tests[2].in, tests[3].in, strings.Repeat(" \t", 300) + "=\r\n" + strings.Repeat(" ", 600)} {
		raw := []byte("Content-Transfer-Encoding: quoted-printable\r\n\r\n" + in)
		for _, pm := range []*PartMap{scanOnce(raw, Limits{}), scanBytewise(raw, Limits{})} {
			checkDecodedSizes(t, raw, pm)
		}
	}
}

func TestDecodeZeroRead(t *testing.T) {
	r := Decode(strings.NewReader("QUJD"), "base64")
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil || buf.String() != "ABC" {
		t.Errorf("%q, %v", buf.String(), err)
	}
}
