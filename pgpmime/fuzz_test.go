package pgpmime

import (
	"bytes"
	"io"
	"net/mail"
	"strings"
	"testing"
)

// Fuzz targets for every parser of untrusted input. The seeds run with the
// ordinary tests; explore with e.g.
//
//	go test -run '^$' -fuzz FuzzDetect -fuzztime 1m ./pgpmime/

func FuzzDetect(f *testing.F) {
	for _, s := range []string{
		"Content-Type: multipart/encrypted; boundary=x\r\n\r\n",
		"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n",
		"Subject: x\n\n-----BEGIN PGP MESSAGE-----\n",
		"content-type:\r\n multipart/encrypted\r\n\r\n",
		" cont\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Detect(b)
		q, r, err := Sniff(bytes.NewReader(b))
		if err != nil || p != q {
			t.Fatalf("Detect %v, Sniff %v, %v", p, q, err)
		}
		if all, _ := io.ReadAll(r); !bytes.Equal(all, b) {
			t.Fatal("Sniff lost bytes")
		}
	})
}

// FuzzParseOuterHeaders: whatever the header, the values picked can only
// produce the fields they belong to, with CRLF line endings.
func FuzzParseOuterHeaders(f *testing.F) {
	for _, s := range []string{
		"From: a@example.org\r\nTo: b@example.org,\r\n c@example.org\r\nSubject: s\r\n\r\nbody",
		"to: x\nFrom:\r\n\r\n",
		"Subject: a\rBcc: b\r\n\r\n",
		"From: a\x00\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	ks := testKeys(f)
	rs := recipientsOf(f, ks.alice.pub)
	f.Fuzz(func(t *testing.T, b []byte) {
		h := ParseOuterHeaders(b)
		for _, v := range []string{h.From, h.To, h.Cc, h.Date, h.MessageID, h.Subject} {
			if v != sanitizeValue(v) {
				t.Fatalf("value %q is not in written form", v)
			}
		}
		var out bytes.Buffer
		w, err := NewPGPMIMEWriter(&out, h, rs, Options{KeepSubject: true, boundary: "b"})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := crlfError(out.Bytes()); err != nil {
			if !strings.Contains(err.Error(), "line of") { // over-long lines come from the input
				t.Fatal(err)
			}
		}
		m, err := mail.ReadMessage(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("output header does not parse: %v", err)
		}
		for k := range m.Header {
			switch k {
			case "From", "To", "Cc", "Date", "Message-Id", "Subject", "Mime-Version", "Content-Type":
			default:
				t.Fatalf("outer header has field %q", k)
			}
		}
	})
}

// FuzzProtectHeader: the rewrite only ever inserts the marker.
func FuzzProtectHeader(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\r\n",
		"Content-Type: multipart/mixed;\n boundary=x\nSubject: s\n",
		"Subject: s\r\n",
		"Content-Type: text/plain; protected-headers=v1\r\n",
		"Content-Type: \r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		end, _, _ := splitHeader(h)
		h = h[:end]
		got := protectHeader(h)
		if bytes.Equal(got, h) {
			return
		}
		for _, mark := range []string{";\r\n protected-headers=\"v1\"", ";\n protected-headers=\"v1\""} {
			if i := bytes.Index(got, []byte(mark)); i >= 0 && bytes.Equal(append(got[:i:i], got[i+len(mark):]...), h) {
				return
			}
		}
		t.Fatalf("protectHeader(%q) = %q", h, got)
	})
}

// FuzzParseKeys: key files never panic the loader.
func FuzzParseKeys(f *testing.F) {
	ks := testKeys(f)
	var bin bytes.Buffer
	ks.alice.entity.Serialize(&bin)
	f.Add(ks.alice.pub)
	f.Add(bin.Bytes())
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxjMEZ\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte{0x99, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, _, err := parseKeys(b)
		if err == nil && len(es) == 0 {
			t.Fatal("no keys and no error")
		}
	})
}
