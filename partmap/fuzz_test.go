package partmap

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"reflect"
	"strings"
	"testing"
)

// FuzzScan checks the scanner's invariants on any input: no panic, the
// parts' ranges in order inside the message, DecodedSize equal to what
// Decode gives, and the same map for 1-byte writes as for one write, with
// the default limits and with small ones.
func FuzzScan(f *testing.F) {
	for _, raw := range goldenInputs(f) {
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--a--"))
	f.Add([]byte("Content-Transfer-Encoding: base64\n\nQUJD\r\nRA=\r\n"))
	f.Add([]byte("Content-Transfer-Encoding: quoted-printable\r\n\r\na=\r\nb=4\r\n= \r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, l := range []Limits{{}, {MaxDepth: 2, MaxParts: 3, MaxHeaderBytes: 48}} {
			pm := scanOnce(raw, l)
			checkInvariants(t, raw, pm, l)
			checkDecodedSizes(t, raw, pm)
			if got := scanBytewise(raw, l); !reflect.DeepEqual(got, pm) {
				t.Fatalf("%+v: 1-byte writes give\n%s\none write gives\n%s", l, marshalPartMap(t, got), marshalPartMap(t, pm))
			}
		}
	})
}

// FuzzQuotedPrintable: where mime/quotedprintable decodes an input, Decode
// gives the same bytes; Decode itself never fails.
func FuzzQuotedPrintable(f *testing.F) {
	for _, s := range []string{"", "a=\r\nb", "=3D=3d", "a  \r\nb\t\n", "=\n", "x=4", "==41", "a\r\r\n", "=A \r\n", "= x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(Decode(bytes.NewReader(in), "quoted-printable"))
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		want, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(in)))
		if err == nil && !bytes.Equal(got, want) {
			t.Errorf("Decode(%q) = %q, mime/quotedprintable gives %q", in, got, want)
		}
	})
}

// FuzzBase64: where encoding/base64 decodes an input (line breaks
// removed), Decode gives the same bytes.
func FuzzBase64(f *testing.F) {
	for _, s := range []string{"", "QUJD", "QUJDRA==", "QUJ\r\nDRA=", "QQ", "QQ==QQ==", "Q", "QU=J"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, gerr := io.ReadAll(Decode(bytes.NewReader(in), "base64"))
		want, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(in)))
		if err == nil && (gerr != nil || !bytes.Equal(got, want)) {
			t.Errorf("Decode(%q) = %q, %v; encoding/base64 gives %q", in, got, gerr, want)
		}
	})
}

// FuzzParseValue: where mime.ParseMediaType accepts a value without RFC
// 2231 parameters, parseValue reads the same.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"text/plain", `multipart/mixed; boundary="a b"`, "attachment; filename=x.pdf",
		`text/plain; charset=us-ascii (Plain text)`, `a/b; x="\"q\"\\"; y=z;`, `attachment; filename="C:\a\b.doc"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		main, params := parseValue(v)
		wantMain, wantParams, err := mime.ParseMediaType(v)
		if err != nil || strings.Contains(v, "*") {
			return
		}
		if main != wantMain {
			t.Errorf("parseValue(%q) main = %q, mime.ParseMediaType %q", v, main, wantMain)
		}
		if len(params) == 0 && len(wantParams) == 0 {
			return
		}
		if !reflect.DeepEqual(params, wantParams) {
			t.Errorf("parseValue(%q) params = %q, mime.ParseMediaType %q", v, params, wantParams)
		}
	})
}
