package pgpmime

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
)

// origParts are the decoded parts of the test message, in order.
type origParts struct {
	text   []byte // 8-bit UTF-8 text with dot lines
	latin1 []byte // 8-bit ISO-8859-1 text
	binary []byte // the decoded binary attachment
}

// buildMessage returns a multipart message with an 8-bit UTF-8 text part
// (with lines that start with dots, a lone dot, a "From " line, trailing
// space and a long line), an 8-bit Latin-1 part and a base64 binary
// attachment of binSize random bytes (every byte value, CR and LF included).
func buildMessage(binSize int) ([]byte, origParts) {
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	var p origParts
	p.text = []byte("Grüße aus Zürich — naïve café ☃\r\n" +
		".a line that starts with a dot\r\n" +
		"..two dots\r\n" +
		".\r\n" +
		"From the desk of Alice\r\n" +
		"trailing space   \r\n" +
		strings.Repeat("long-", 180) + "\r\n" +
		"-----BEGIN PGP MESSAGE----- (quoted, not a message)\r\n")
	p.latin1 = []byte("Caf\xe9 cr\xe8me br\xfbl\xe9e \xa9 2025\r\n.dot\r\n")
	p.binary = make([]byte, binSize)
	for i := range p.binary {
		p.binary[i] = byte(rng.Uint32())
	}
	copy(p.binary, "\x00\r\n.\r\n\r\n.\n\r")

	var b bytes.Buffer
	b.WriteString("Return-Path: <alice@example.org>\r\n" +
		"Received: from client.example.org (client.example.org [192.0.2.7])\r\n" +
		"\tby mx.example.org (Postfix) with ESMTPS id 4Xyz\r\n" +
		"\tfor <gina@example.org>; Tue, 3 Jun 2025 10:00:00 +0000 (UTC)\r\n" +
		"From: Alice Example <alice@example.org>\r\n" +
		"To: Gina GnuPG <gina@example.org>,\r\n" +
		" Bob <Bob@Example.org>\r\n" +
		"Cc: Dave <dave@example.org>\r\n" +
		"Reply-To: finance@example.org\r\n" +
		"Subject: =?utf-8?q?Quartalszahlen_Gr=C3=BC=C3=9Fe?= - secret merger plans\r\n" +
		"Date: Tue, 3 Jun 2025 10:00:00 +0000\r\n" +
		"Message-ID: <20250603100000.4Xyz@example.org>\r\n" +
		"X-Custom: travels only inside\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"outer-b0undary\"\r\n" +
		"\r\n" +
		"This is a multi-part message in MIME format.\r\n" +
		"--outer-b0undary\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n")
	b.Write(p.text)
	b.WriteString("--outer-b0undary\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"Content-Disposition: attachment; filename=\"latin1.txt\"\r\n" +
		"\r\n")
	b.Write(p.latin1)
	b.WriteString("--outer-b0undary\r\n" +
		"Content-Type: application/octet-stream\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"data.bin\"\r\n" +
		"\r\n")
	writeBase64Lines(&b, p.binary)
	b.WriteString("--outer-b0undary--\r\n")
	return b.Bytes(), p
}

func writeBase64Lines(w io.Writer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		io.WriteString(w, enc[:76]+"\r\n")
		enc = enc[76:]
	}
	io.WriteString(w, enc+"\r\n")
}

// checkParts parses a decrypted entity and checks that every part is the
// original, byte for byte (raw and decoded).
func checkParts(t *testing.T, entity []byte, want origParts) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(entity))
	if err != nil {
		t.Fatalf("decrypted entity: %v", err)
	}
	if got := m.Header.Get("Subject"); !strings.Contains(got, "secret merger plans") {
		t.Errorf("inner Subject = %q", got)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var got [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			b, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, b)
	}
	if len(got) != 3 {
		t.Fatalf("decrypted entity has %d parts, want 3", len(got))
	}
	// multipart strips the CRLF before each boundary: the part bodies as
	// written end in CRLF, so compare without the final one.
	for i, w := range [][]byte{want.text, want.latin1} {
		if !bytes.Equal(got[i], bytes.TrimSuffix(w, []byte("\r\n"))) {
			t.Errorf("part %d differs:\n got %q\nwant %q", i, got[i], w)
		}
	}
	if !bytes.Equal(got[2], want.binary) {
		t.Errorf("binary attachment differs (%d bytes, want %d)", len(got[2]), len(want.binary))
	}
}

// writeLargeMessage writes a message with one attachment of about size
// bytes (base64 of a deterministic random stream) to w in 32 KiB writes,
// calling tick after each, and returns the SHA-256 of what it wrote.
func writeLargeMessage(w io.Writer, size int, tick func(written int)) ([]byte, error) {
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	head := "From: alice@example.org\r\nTo: gina@example.org\r\nSubject: big\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	if _, err := io.WriteString(mw, head); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{9}))
	raw := make([]byte, 57*418) // 418 base64 lines of 76 characters
	line := make([]byte, 78)
	buf := make([]byte, 0, 418*78)
	written := len(head)
	for written < size {
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		buf = buf[:0]
		for i := 0; i < len(raw); i += 57 {
			base64.StdEncoding.Encode(line, raw[i:i+57])
			line[76], line[77] = '\r', '\n'
			buf = append(buf, line...)
		}
		if _, err := mw.Write(buf); err != nil {
			return nil, err
		}
		written += len(buf)
		if tick != nil {
			tick(written)
		}
	}
	if _, err := io.WriteString(mw, "--b--\r\n"); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// hashWriter is a sha256 that counts.
type hashWriter struct {
	hash.Hash
	n int64
}

func newHashWriter() *hashWriter { return &hashWriter{Hash: sha256.New()} }

func (h *hashWriter) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.Hash.Write(p)
}

// checkCRLF fails if b has a CR not followed by LF or an LF not preceded
// by CR, or a line longer than 998 characters.
func checkCRLF(t testing.TB, b []byte) {
	t.Helper()
	if err := crlfError(b); err != nil {
		t.Fatal(err)
	}
}

func crlfError(b []byte) error {
	lineStart := 0
	for i, c := range b {
		switch c {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return fmt.Errorf("bare CR at byte %d", i)
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return fmt.Errorf("bare LF at byte %d", i)
			}
			if i-1-lineStart > 998 {
				return fmt.Errorf("line of %d characters at byte %d", i-1-lineStart, lineStart)
			}
			lineStart = i + 1
		}
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return fmt.Errorf("output does not end with CRLF")
	}
	return nil
}
