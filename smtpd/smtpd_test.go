package smtpd

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// crlf turns a readable literal into wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// b64 wraps base64 at 76 columns, as mail does.
func b64(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return b.String()
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

type testMessage struct {
	name   string
	data   []byte
	marker string // a plaintext string that must never appear in the archive
	from   string
	to     []string
	utf8   bool
	body8  bool // sent with BODY=8BITMIME
}

func testMessages(t *testing.T) []testMessage {
	big := randomBytes(t, 30<<20)
	small := randomBytes(t, 70_000)
	return []testMessage{
		{name: "plain text", marker: "MARKER-plain-8c1f", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: hello MARKER-plain-8c1f\n\nJust text MARKER-plain-8c1f.\n")},
		{name: "multipart alternative", marker: "MARKER-alt-77aa", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: alt\nMIME-Version: 1.0\n" +
				"Content-Type: multipart/alternative; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nplain MARKER-alt-77aa\n" +
				"--b1\nContent-Type: text/html\n\n<p>html MARKER-alt-77aa</p>\n--b1--\n")},
		{name: "nested multipart with binary attachments", marker: "MARKER-nested-1234", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: nested MARKER-nested-1234\nMIME-Version: 1.0\n" +
				"Content-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\n" +
				"Content-Type: multipart/alternative; boundary=\"inner\"\n\n--inner\nContent-Type: text/plain\n\nbody MARKER-nested-1234\n--inner--\n" +
				"--outer\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n" +
				"Content-Disposition: attachment; filename=\"data.bin\"\n\n" + b64(small) + "--outer--\n")},
		{name: "8-bit body", marker: "MARKER-8bit-Grüße", body8: true, data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: 8bit\nMIME-Version: 1.0\n" +
				"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße MARKER-8bit-Grüße \xff\xfe\n")},
		{name: "SMTPUTF8 addresses and headers", marker: "MARKER-utf8-日本", utf8: true,
			from: "josé@exämple.test", to: []string{"用户@例子.test"}, data: crlf(
				"From: josé@exämple.test\nTo: 用户@例子.test\nSubject: こんにちは MARKER-utf8-日本\n\nbody MARKER-utf8-日本\n")},
		{name: "broken MIME: unterminated boundary", marker: "MARKER-unterminated-55", data: crlf(
			"From: a@example.test\nTo: b@example.test\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"x\"\n\n" +
				"--x\nContent-Type: text/plain\n\nMARKER-unterminated-55 and then it stops\n")},
		{name: "broken MIME: bad base64", marker: "MARKER-badb64-99", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: MARKER-badb64-99\nMIME-Version: 1.0\nContent-Type: application/pdf\n" +
				"Content-Transfer-Encoding: base64\n\n!!!not base64 at all###\n")},
		{name: "header without body", marker: "MARKER-nobody-31", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: MARKER-nobody-31\n")},
		{name: "lines starting with dots", marker: "MARKER-dots-42", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: MARKER-dots-42\n\n.\n..\n.leading dot\n...\n. MARKER-dots-42\n")},
		{name: "30 MB attachment", marker: "MARKER-big-30mb", data: crlf(
			"From: a@example.test\nTo: b@example.test\nSubject: MARKER-big-30mb\nMIME-Version: 1.0\n" +
				"Content-Type: multipart/mixed; boundary=\"big\"\n\n--big\nContent-Type: text/plain\n\nsee attached\n--big\n" +
				"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + b64(big) + "--big--\n")},
	}
}

// TestRoundTrip runs every message kind through the pipeline on the embedded
// backends (fs archive, local keyring) and on the production ones (S3 on a
// real MinIO, keys from the KMS test double through the AWS SDK).
func TestRoundTrip(t *testing.T) {
	messages := testMessages(t)
	t.Run("fs+local", func(t *testing.T) { roundTrip(t, newEnv(t, envOpts{maxBytes: 60 << 20}), messages) })
	t.Run("s3+kms", func(t *testing.T) { roundTrip(t, newEnv(t, envOpts{maxBytes: 60 << 20, s3kms: true}), messages) })
}

func roundTrip(t *testing.T, e *testEnv, messages []testMessage) {
	var sent []testMessage
	for _, m := range messages {
		t.Run(m.name, func(t *testing.T) {
			from, to := m.from, m.to
			if from == "" {
				from, to = "a@example.test", []string{"b@example.test", "c@example.test"}
			}
			mo := &smtp.MailOptions{UTF8: m.utf8}
			if m.body8 {
				mo.Body = smtp.Body8BitMIME
			}
			before := len(e.hop.messages())
			res := e.send(t, from, to, m.data, mo)
			if res.code != 250 || res.id() == "" {
				t.Fatalf("reply %d %q (%v), want 250 with an archive id", res.code, res.text, res.err)
			}
			got := e.hop.messages()
			if len(got) != before+1 {
				t.Fatalf("next hop received %d messages, want %d", len(got), before+1)
			}
			fwd := got[len(got)-1]
			if !bytes.Equal(fwd.data, m.data) {
				t.Errorf("next hop received %d bytes that differ from the %d sent", len(fwd.data), len(m.data))
			}
			if fwd.from != from || strings.Join(fwd.to, ",") != strings.Join(to, ",") {
				t.Errorf("next hop envelope %q -> %q, want %q -> %q", fwd.from, fwd.to, from, to)
			}
			if m.utf8 && !fwd.opts.UTF8 {
				t.Error("SMTPUTF8 was not passed on to the next hop")
			}
			if m.body8 && fwd.opts.Body != smtp.Body8BitMIME {
				t.Errorf("next hop got BODY=%q, want 8BITMIME", fwd.opts.Body)
			}
			if back := e.open(t, res.id()); !bytes.Equal(back, m.data) {
				t.Errorf("archive returned %d bytes that differ from the %d sent", len(back), len(m.data))
			}
			man := e.manifest(t, res.id())
			if man.Size != int64(len(m.data)) || man.From != from || len(man.To) != len(to) || len(man.Parts) == 0 {
				t.Errorf("manifest = size %d from %q to %v parts %d", man.Size, man.From, man.To, len(man.Parts))
			}
			sent = append(sent, m)
		})
	}
	// No stored file may contain any plaintext marker.
	stored := e.storedFiles(t)
	if len(stored) < 2*len(sent) {
		t.Fatalf("found %d stored objects for %d messages", len(stored), len(sent))
	}
	for path, b := range stored {
		for _, m := range sent {
			if bytes.Contains(b, []byte(m.marker)) {
				t.Errorf("%s contains the plaintext marker %q", path, m.marker)
			}
		}
	}
	if ids := e.archivedIDs(t); len(ids) != len(sent) {
		t.Errorf("archive lists %d messages, want %d", len(ids), len(sent))
	}
}

func TestStoreOnly(t *testing.T) {
	e := newEnv(t, envOpts{storeOnly: true})
	msg := crlf("Subject: store only\n\nbody\n")
	res := e.send(t, "a@example.test", []string{"b@example.test"}, msg, nil)
	if res.code != 250 || res.id() == "" {
		t.Fatalf("reply %d %q, want 250", res.code, res.text)
	}
	if got := e.open(t, res.id()); !bytes.Equal(got, msg) {
		t.Fatal("archived copy differs")
	}
}

func TestNextHopGetsCRLFOnly(t *testing.T) {
	e := newEnv(t, envOpts{})
	// Bare LF and bare CR inside DATA (sent raw: a client library would
	// have corrected them): archived exactly as received, forwarded with
	// CRLF only. "\n.\n" is not an end of data, only CRLF.CRLF is.
	raw := "Subject: bare\r\n\r\nline one\nline two\rline three\r\n..\n.x\r\nend\n.\nmore\rend"
	reply := e.sendRaw(t, []byte(raw))
	if !strings.HasPrefix(reply, "250 ") {
		t.Fatalf("reply %q", reply)
	}
	// What was received: dot-unstuffing applies only after CRLF.
	received := "Subject: bare\r\n\r\nline one\nline two\rline three\r\n.\n.x\r\nend\n.\nmore\rend\r\n"
	fwd := e.hop.messages()[0].data
	for i, c := range fwd {
		if c == '\n' && (i == 0 || fwd[i-1] != '\r') {
			t.Fatalf("bare LF at %d in forwarded %q", i, fwd)
		}
		if c == '\r' && (i+1 == len(fwd) || fwd[i+1] != '\n') {
			t.Fatalf("bare CR at %d in forwarded %q", i, fwd)
		}
	}
	want := strings.NewReplacer("\r\n", "\r\n", "\n", "\r\n", "\r", "\r\n").Replace(received)
	if string(fwd) != want {
		t.Errorf("forwarded %q, want %q", fwd, want)
	}
	id := strings.TrimPrefix(reply, "250 2.0.0 Ok: archived as ")
	if got := e.open(t, id); string(got) != received {
		t.Errorf("archived %q, want the bytes received %q", got, received)
	}
}

func TestFailures(t *testing.T) {
	msg := crlf("Subject: failure test\n\nbody\n")
	from, to := "a@example.test", []string{"b@example.test"}

	t.Run("next hop down", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := l.Addr().String()
		l.Close()
		e := newEnv(t, envOpts{hopAddr: dead})
		res := e.send(t, from, to, msg, nil)
		if res.code != 451 {
			t.Fatalf("reply %d %q, want 451", res.code, res.text)
		}
		if ids := e.archivedIDs(t); len(ids) != 0 {
			t.Fatalf("archive has %d entries after a failed delivery", len(ids))
		}
	})
	t.Run("next hop 4xx at end of data", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.hop.set(nil, &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "queue full"})
		res := e.send(t, from, to, msg, nil)
		if res.code != 451 {
			t.Fatalf("reply %d %q, want 451", res.code, res.text)
		}
		if ids := e.archivedIDs(t); len(ids) != 0 {
			t.Fatalf("archive keeps %d entries claiming a delivery that failed", len(ids))
		}
		// The retry after the 451 is archived exactly once.
		e.hop.set(nil, nil)
		res = e.send(t, from, to, msg, nil)
		if res.code != 250 {
			t.Fatalf("retry: reply %d %q, want 250", res.code, res.text)
		}
		if ids := e.archivedIDs(t); len(ids) != 1 {
			t.Fatalf("archive has %d entries after the retry, want 1", len(ids))
		}
	})
	t.Run("next hop 5xx at end of data", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.hop.set(nil, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected by policy"})
		res := e.send(t, from, to, msg, nil)
		if res.code != 554 {
			t.Fatalf("reply %d %q, want the next hop's 554", res.code, res.text)
		}
		if ids := e.archivedIDs(t); len(ids) != 0 {
			t.Fatalf("archive keeps %d entries of a message the next hop refused", len(ids))
		}
	})
	t.Run("next hop 5xx at RCPT", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.hop.set(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, nil)
		res := e.send(t, from, to, msg, nil)
		if res.code != 550 {
			t.Fatalf("reply %d %q, want 550 passed through", res.code, res.text)
		}
	})
	t.Run("store not writable", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.store.set(errors.New("injected: disk full"))
		res := e.send(t, from, to, msg, nil)
		if res.code != 451 {
			t.Fatalf("reply %d %q, want 451", res.code, res.text)
		}
		if strings.Contains(res.text, "disk full") {
			t.Errorf("reply %q leaks the internal cause", res.text)
		}
		if n := len(e.hop.messages()); n != 0 {
			t.Fatalf("next hop received %d messages although the archive failed", n)
		}
		e.store.set(nil)
		if res := e.send(t, from, to, msg, nil); res.code != 250 {
			t.Fatalf("after recovery: reply %d %q", res.code, res.text)
		}
	})
	t.Run("key provider failing", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.keys.set(errors.New("injected: key service unreachable"), false)
		res := e.send(t, from, to, msg, nil)
		if res.code != 451 {
			t.Fatalf("reply %d %q, want 451", res.code, res.text)
		}
		if n := len(e.hop.messages()); n != 0 {
			t.Fatalf("next hop received %d messages although the key service failed", n)
		}
	})
	t.Run("panic in the pipeline", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.keys.set(nil, true)
		res := e.send(t, from, to, msg, nil)
		if res.code != 451 {
			t.Fatalf("reply %d %q, want 451", res.code, res.text)
		}
		e.keys.set(nil, false)
		if res := e.send(t, from, to, msg, nil); res.code != 250 {
			t.Fatalf("the message after a panic: reply %d %q, want 250", res.code, res.text)
		}
	})
	t.Run("over the size limit", func(t *testing.T) {
		e := newEnv(t, envOpts{maxBytes: 1 << 20})
		big := append(crlf("Subject: big\n\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 20000)...)
		res := e.send(t, from, to, big, nil)
		if res.code != 552 {
			t.Fatalf("reply %d %q, want 552", res.code, res.text)
		}
		if ids := e.archivedIDs(t); len(ids) != 0 {
			t.Fatalf("archive has %d entries of a message over the limit", len(ids))
		}
		res = e.send(t, from, to, msg, &smtp.MailOptions{Size: 2 << 20})
		if res.code != 552 {
			t.Fatalf("SIZE= over the limit: reply %d %q, want 552", res.code, res.text)
		}
	})
}

func TestResentMessageArchivedOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	msg := crlf("Subject: resent\nMessage-ID: <r1@example.test>\n\nbody\n")
	first := e.send(t, "a@example.test", []string{"b@example.test"}, msg, nil)
	// Postfix re-sends the same queue file when it never saw our 250.
	second := e.send(t, "a@example.test", []string{"b@example.test"}, msg, nil)
	if first.code != 250 || second.code != 250 {
		t.Fatalf("replies %d, %d", first.code, second.code)
	}
	if first.id() != second.id() {
		t.Errorf("the re-sent message got id %s, want the first id %s", second.id(), first.id())
	}
	if ids := e.archivedIDs(t); len(ids) != 1 {
		t.Errorf("archive has %d entries, want 1", len(ids))
	}
	// A different envelope is a different delivery.
	third := e.send(t, "a@example.test", []string{"c@example.test"}, msg, nil)
	if third.id() == first.id() {
		t.Error("a different envelope was treated as a duplicate")
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, envOpts{})
	t.Run("1001st recipient", func(t *testing.T) {
		c, err := smtp.Dial(e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("a@example.test", nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1000; i++ {
			if err := c.Rcpt(fmt.Sprintf("r%d@example.test", i), nil); err != nil {
				t.Fatalf("rcpt %d: %v", i, err)
			}
		}
		err = c.Rcpt("one-too-many@example.test", nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 452 {
			t.Fatalf("1001st recipient: %v, want 452", err)
		}
	})
	t.Run("long line under the limit", func(t *testing.T) {
		msg := append(crlf("Subject: long\n\n"), bytes.Repeat([]byte("x"), 60_000)...)
		msg = append(msg, "\r\n"...)
		res := e.send(t, "a@example.test", []string{"b@example.test"}, msg, nil)
		if res.code != 250 {
			t.Fatalf("reply %d %q", res.code, res.text)
		}
		if got := e.open(t, res.id()); !bytes.Equal(got, msg) {
			t.Fatal("archived copy differs")
		}
	})
	t.Run("line over the limit", func(t *testing.T) {
		before := len(e.archivedIDs(t))
		msg := append(crlf("Subject: long\n\n"), bytes.Repeat([]byte("x"), 100_000)...)
		msg = append(msg, "\r\n"...)
		res := e.send(t, "a@example.test", []string{"b@example.test"}, msg, nil)
		if res.code != 500 {
			t.Fatalf("reply %d %q, want 500 line too long", res.code, res.text)
		}
		if n := len(e.archivedIDs(t)); n != before {
			t.Fatalf("archive grew by %d", n-before)
		}
	})
	t.Run("NUL bytes", func(t *testing.T) {
		msg := []byte("Subject: nul\r\n\r\na\x00b\x00\r\n")
		res := e.send(t, "a@example.test", []string{"b@example.test"}, msg, nil)
		if res.code != 250 {
			t.Fatalf("reply %d %q", res.code, res.text)
		}
		if got := e.open(t, res.id()); !bytes.Equal(got, msg) {
			t.Fatal("archived copy differs")
		}
	})
	t.Run("session limit", func(t *testing.T) {
		e := newEnv(t, envOpts{maxSessions: 2})
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; i < 2; i++ {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			buf := make([]byte, 512)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, _ := c.Read(buf); !strings.HasPrefix(string(buf[:n]), "220") {
				t.Fatalf("session %d greeted with %q", i, buf[:n])
			}
		}
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "421 ") {
			t.Fatalf("session over the limit greeted with %q, want 421", buf[:n])
		}
	})
}
