package smtpd

import (
	"io"
	"net"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/internal/memtest"
)

// messageReader generates a message of exactly size bytes without holding
// it: a header, then 76-column base64-looking lines.
type messageReader struct {
	header []byte
	size   int64
	off    int64
}

func newMessageReader(size int64) *messageReader {
	h := "From: a@example.test\r\nTo: b@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	return &messageReader{header: []byte(h), size: size}
}

const lineBody = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0"

func (m *messageReader) Read(p []byte) (int, error) {
	if m.off >= m.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && m.off < m.size {
		var c byte
		if m.off < int64(len(m.header)) {
			c = m.header[m.off]
		} else {
			pos := (m.off - int64(len(m.header))) % 78
			switch {
			case m.off >= m.size-2:
				c = "\r\n"[m.off-(m.size-2)]
			case pos == 76:
				c = '\r'
			case pos == 77:
				c = '\n'
			default:
				c = lineBody[pos]
			}
		}
		p[n] = c
		n++
		m.off++
	}
	return n, nil
}

// TestMemoryDoesNotGrowWithMessageSize relays a 1 MB and a 100 MB message
// through the whole pipeline (seal, archive, part map, next hop) and checks
// that the peak heap is about the same.
func TestMemoryDoesNotGrowWithMessageSize(t *testing.T) {
	// The recording next hop keeps what it receives; use a discarding one
	// so the test measures mailvaultd, not the recorder.
	e2 := newEnv(t, envOpts{maxBytes: 200 << 20, hopAddr: startDiscardHop(t)})
	relay := func(size int64) uint64 {
		return memtest.PeakHeap(func() {
			c, err := smtp.Dial(e2.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if id := streamMessage(t, c, "a@example.test", newMessageReader(size)); id == "" {
				t.Fatalf("relay of %d bytes: no archive id in the reply", size)
			}
		})
	}
	relay(1 << 20) // warm up buffers and pools
	small := relay(1 << 20)
	large := relay(100 << 20)
	t.Logf("peak heap growth: 1 MB message %.1f MiB, 100 MB message %.1f MiB",
		float64(small)/(1<<20), float64(large)/(1<<20))
	// Flat means independent of size: allow noise, but nowhere near the
	// 100 MB that buffering would take.
	if large > small+16<<20 {
		t.Errorf("peak heap for 100 MB is %d bytes, for 1 MB %d: memory grows with message size", large, small)
	}
}

// startDiscardHop is a real SMTP server that reads and drops every message.
func startDiscardHop(t testing.TB) string {
	t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }))
	srv.Domain = "discard.test"
	srv.MaxMessageBytes = 1 << 30
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, srv, l)
	return l.Addr().String()
}

type discardSession struct{}

func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (discardSession) Reset()                               {}
func (discardSession) Logout() error                        { return nil }
