package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// SMTP smuggling: a client hides a second transaction inside the data of
// the first behind an end-of-data marker that is not <CR><LF>.<CR><LF>. If
// we read it as an end, or if we forward a stream in which the next hop can
// read it as one, the hidden transaction is delivered as a message of its
// own with a forged envelope. Postfix's re-injection port is exempt from
// Postfix's own smuggling checks, so the forwarded stream must carry CRLF
// line endings only.
//
// These tests write each session to the socket exactly as given, pipelined
// in one write, and forward to rawHop: a minimal SMTP server that records
// the raw bytes it receives (before any dot-unstuffing) and finds the end of
// data by RFC 5321's rule alone, so a fault in go-smtp's reader cannot hide
// the same fault in ours.

// smuggled is the hidden transaction.
const smuggled = "MAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n" +
	"From: evil@example.test\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n"

// fakeEnds are the end-of-data markers of the published smuggling attacks
// (SEC Consult 2023 and after), and their relatives.
var fakeEnds = []struct{ name, seq string }{
	{"LF.LF", "\n.\n"},
	{"LF.CRLF", "\n.\r\n"},
	{"CR.CR", "\r.\r"},
	{"CRLF.LF", "\r\n.\n"},
	{"CR.CRLF", "\r.\r\n"},
	{"LF.CR", "\n.\r"},
	{"CR.LF", "\r.\n"},
	{"NUL", "\r\n.\x00\r\n"},
	{"space", "\r\n. \r\n"},
}

func TestSmuggling(t *testing.T) {
	hop := startRawHop(t)
	e := newEnv(t, envOpts{hopAddr: hop.addr})
	for _, fe := range fakeEnds {
		t.Run(fe.name, func(t *testing.T) {
			first := "From: a@example.test\r\nSubject: smuggling " + fe.name + "\r\n\r\nbefore" + fe.seq + smuggled + "after\r\n"
			second := "From: c@example.test\r\nSubject: the transaction after " + fe.name + "\r\n\r\nsecond\r\n"
			script := "EHLO client.test\r\n" +
				"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" + first + ".\r\n" +
				"MAIL FROM:<c@example.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n" + second + ".\r\n" +
				"QUIT\r\n"
			hop.reset()
			idsBefore := len(e.archivedIDs(t))

			replies := converse(t, e.addr, script)
			want := []string{"220", "250", "250", "250", "354", "250", "250", "250", "354", "250", "221"}
			checkCodes(t, replies, want)
			ids := archivedIn(replies)
			if len(ids) != 2 {
				t.Fatalf("replies %q: want two transactions archived", replies)
			}

			// Exactly one message archived per transaction, each exactly
			// what RFC 5321 says the client sent.
			if n := len(e.archivedIDs(t)) - idsBefore; n != 2 {
				t.Errorf("archive grew by %d messages, want 2", n)
			}
			wantFirst, _ := rfcData([]byte(first + ".\r\n"))
			wantSecond, _ := rfcData([]byte(second + ".\r\n"))
			if got := e.open(t, ids[0]); !bytes.Equal(got, wantFirst) {
				t.Errorf("first message archived as\n%q\nwant\n%q", got, wantFirst)
			}
			if got := e.open(t, ids[1]); !bytes.Equal(got, wantSecond) {
				t.Errorf("second message archived as\n%q\nwant\n%q", got, wantSecond)
			}

			// Exactly one message forwarded per transaction, with the
			// envelope of its transaction, the hidden one still inside the
			// first, and CRLF line endings only on the wire.
			msgs := hop.messages()
			if len(msgs) != 2 {
				t.Fatalf("next hop received %d messages, want 2: %+v", len(msgs), msgs)
			}
			for i, env := range [][2]string{{"<a@example.test>", "<b@example.test>"}, {"<c@example.test>", "<d@example.test>"}} {
				if !strings.HasPrefix(msgs[i].from, env[0]) || len(msgs[i].to) != 1 || !strings.HasPrefix(msgs[i].to[0], env[1]) {
					t.Errorf("forwarded message %d has envelope %q -> %q, want %s -> %s", i, msgs[i].from, msgs[i].to, env[0], env[1])
				}
			}
			if !bytes.Contains(msgs[0].data, []byte("smuggled body")) {
				t.Error("the hidden transaction is not inside the first forwarded message")
			}
			if err := hop.checkWire(); err != nil {
				t.Error(err)
			}
			for i, want := range [][]byte{wantFirst, wantSecond} {
				if got := msgs[i].data; !bytes.Equal(got, normalizeCRLF(want)) {
					t.Errorf("forwarded message %d is\n%q\nwant the archived bytes with CRLF line endings\n%q", i, got, normalizeCRLF(want))
				}
			}
		})
	}
}

// TestSmugglingBareLineEndings sends bare CR and LF in every position a
// line ending can take, including next to dots, in one message.
func TestSmugglingBareLineEndings(t *testing.T) {
	hop := startRawHop(t)
	e := newEnv(t, envOpts{hopAddr: hop.addr})
	body := "Subject: bare\r\n\r\n" +
		"lf\nlf-dot\n.\ncr\rcr-dot\r.\rmixed\n\r\n" +
		".\n" + ".\r" + "x\r\n" +
		"..\n..\r\n" +
		".leading\r\n" +
		"\n\n\r\r" + "x\r\n" +
		"trailing lf\n"
	script := "EHLO client.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" +
		body + "\r\n.\r\nQUIT\r\n"
	replies := converse(t, e.addr, script)
	checkCodes(t, replies, []string{"220", "250", "250", "250", "354", "250", "221"})
	want, _ := rfcData([]byte(body + "\r\n.\r\n"))
	ids := archivedIn(replies)
	if got := e.open(t, ids[0]); !bytes.Equal(got, want) {
		t.Errorf("archived\n%q\nwant\n%q", got, want)
	}
	msgs := hop.messages()
	if len(msgs) != 1 {
		t.Fatalf("next hop received %d messages, want 1", len(msgs))
	}
	if err := hop.checkWire(); err != nil {
		t.Error(err)
	}
	if !bytes.Equal(msgs[0].data, normalizeCRLF(want)) {
		t.Errorf("forwarded\n%q\nwant\n%q", msgs[0].data, normalizeCRLF(want))
	}
}

// TestSmugglingIntoNextHop: a message whose lines, once bare line endings
// become CRLF, would read as an end of data at the next hop ("x<LF>.<CR><LF>"
// becomes "x<CR><LF>.<CR><LF>") must reach it dot-stuffed, as one message.
// This holds only if line endings are normalised before dot-stuffing.
func TestSmugglingIntoNextHop(t *testing.T) {
	hop := startRawHop(t)
	e := newEnv(t, envOpts{hopAddr: hop.addr})
	for _, seq := range []string{"\n.\r\n", "\r.\r\n", "\n.\n", "\r.\r", "\r\n.\n", "\r\n.\r"} {
		hop.reset()
		body := "Subject: next hop\r\n\r\nx" + seq + smuggled + "end\r\n"
		script := "EHLO client.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" +
			body + ".\r\nQUIT\r\n"
		replies := converse(t, e.addr, script)
		checkCodes(t, replies, []string{"220", "250", "250", "250", "354", "250", "221"})
		msgs := hop.messages()
		if len(msgs) != 1 {
			t.Fatalf("%q: next hop received %d messages, want 1", seq, len(msgs))
		}
		if err := hop.checkWire(); err != nil {
			t.Errorf("%q: %v", seq, err)
		}
		if !bytes.Contains(msgs[0].data, []byte("smuggled body")) || !bytes.HasSuffix(msgs[0].data, []byte("end\r\n")) {
			t.Errorf("%q: forwarded message %q does not hold the whole data", seq, msgs[0].data)
		}
	}
}

// converse writes script to a new connection in one piece (pipelined) and
// returns every reply line (the last line of each reply) until the server
// closes the connection.
func converse(t *testing.T, addr, script string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		io.WriteString(conn, script)
		conn.(*net.TCPConn).CloseWrite()
	}()
	var replies []string
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				t.Fatalf("after replies %q: %v", replies, err)
			}
			return replies
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		replies = append(replies, strings.TrimRight(line, "\r\n"))
	}
}

func checkCodes(t *testing.T, replies, want []string) {
	t.Helper()
	ok := len(replies) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(replies[i], want[i]+" ")
	}
	if !ok {
		t.Fatalf("replies %q, want codes %q", replies, want)
	}
}

// archivedIn returns the archive ids in replies, in order.
func archivedIn(replies []string) []string {
	var ids []string
	for _, r := range replies {
		if res := (sendResult{text: r}); strings.HasPrefix(r, "250 ") && res.id() != "" {
			ids = append(ids, res.id())
		}
	}
	return ids
}

// rfcData reads one DATA section by RFC 5321 (4.1.1.4, 4.5.2) and nothing
// else: lines end in CRLF; a line of a single "." ends the data; a leading
// "." of any other line is removed. It returns the content (each line with
// its CRLF) and the bytes after the end line.
func rfcData(s []byte) (content, rest []byte) {
	content = []byte{}
	for {
		i := bytes.Index(s, []byte("\r\n"))
		if i < 0 {
			return nil, nil
		}
		line := s[:i]
		s = s[i+2:]
		if string(line) == "." {
			return content, s
		}
		line, _ = bytes.CutPrefix(line, []byte("."))
		content = append(append(content, line...), '\r', '\n')
	}
}

// normalizeCRLF turns every bare CR and bare LF into CRLF.
func normalizeCRLF(b []byte) []byte {
	return []byte(strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(string(b)))
}

// bareLineEnding returns the offset of the first CR not followed by LF or LF
// not preceded by CR in b, or -1.
func bareLineEnding(b []byte) int {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return i
		}
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return i
		}
	}
	return -1
}

// rawHop is a next hop that records the raw bytes of every session and
// reads DATA by RFC 5321's rule (rfcData) only.
type rawHop struct {
	addr string

	mu       sync.Mutex
	msgs     []hopMessage // data: after RFC dot-unstuffing
	sessions []*bytes.Buffer
}

func startRawHop(t testing.TB) *rawHop {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &rawHop{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conns.Delete(c)
				h.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return h
}

func (h *rawHop) reset() {
	h.mu.Lock()
	h.msgs, h.sessions = nil, nil
	h.mu.Unlock()
}

func (h *rawHop) messages() []hopMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hopMessage(nil), h.msgs...)
}

// checkWire reports a bare CR or LF anywhere in what the hop received.
func (h *rawHop) checkWire() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range h.sessions {
		if off := bareLineEnding(s.Bytes()); off >= 0 {
			b := s.Bytes()
			return fmt.Errorf("session %d to the next hop has a bare line ending at %d: ...%q...", i, off, b[max(0, off-20):min(len(b), off+20)])
		}
	}
	return nil
}

// recorder copies what is read from the connection into the session log.
type recorder struct {
	r   io.Reader
	h   *rawHop
	buf *bytes.Buffer
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.mu.Lock()
	r.buf.Write(p[:n])
	r.h.mu.Unlock()
	return n, err
}

func (h *rawHop) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	rec := &bytes.Buffer{}
	h.mu.Lock()
	h.sessions = append(h.sessions, rec)
	h.mu.Unlock()
	r := bufio.NewReader(recorder{c, h, rec})
	io.WriteString(c, "220 rawhop.test ESMTP\r\n")
	var cur hopMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimRight(line, "\r\n"))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			io.WriteString(c, "250-rawhop.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE\r\n")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			cur = hopMessage{from: strings.TrimRight(line, "\r\n")[len("MAIL FROM:"):]}
			io.WriteString(c, "250 2.1.0 Ok\r\n")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			cur.to = append(cur.to, strings.TrimRight(line, "\r\n")[len("RCPT TO:"):])
			io.WriteString(c, "250 2.1.5 Ok\r\n")
		case cmd == "DATA":
			io.WriteString(c, "354 go ahead\r\n")
			// Read up to the first CRLF "." CRLF, counting the CRLF
			// before the dot as the data's (or an empty data: ".\r\n").
			raw := []byte("\r\n")
			for !bytes.HasSuffix(raw, []byte("\r\n.\r\n")) {
				b, err := r.ReadByte()
				if err != nil {
					return
				}
				raw = append(raw, b)
			}
			data, _ := rfcData(raw[2:])
			cur.data = data
			h.mu.Lock()
			h.msgs = append(h.msgs, cur)
			h.mu.Unlock()
			cur = hopMessage{}
			io.WriteString(c, "250 2.0.0 Ok: queued\r\n")
		case cmd == "RSET", cmd == "NOOP":
			cur = hopMessage{}
			io.WriteString(c, "250 2.0.0 Ok\r\n")
		case cmd == "QUIT":
			io.WriteString(c, "221 2.0.0 Bye\r\n")
			return
		default:
			io.WriteString(c, "502 5.5.2 Error: command not recognized\r\n")
		}
	}
}
