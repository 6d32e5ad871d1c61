package smtpd

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/internal/memtest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// Resource exhaustion: clients that hold a session without finishing it,
// more connections than the daemon serves, and MIME built to blow up a
// parser. Each must cost a bounded amount of time, sessions and memory.

// startServer runs another listener over e's archive and keys, with options
// newEnv does not set (short timeouts, a session limit). Zero fields get
// newEnv's values.
func startServer(t testing.TB, e *testEnv, o Options) (*Server, string) {
	t.Helper()
	if o.Hostname == "" {
		o.Hostname = "mailvault.test"
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 50 << 20
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = 1000
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 20
	}
	if o.MaxLineLength == 0 {
		o.MaxLineLength = 64 << 10
	}
	for _, d := range []*time.Duration{&o.ReadTimeout, &o.WriteTimeout, &o.DataTimeout} {
		if *d == 0 {
			*d = 5 * time.Minute
		}
	}
	if o.NextHopTimeout == 0 {
		o.NextHopTimeout = 10 * time.Second
	}
	log := slog.New(slog.NewTextHandler(testkit.LockedWriter{Mu: e.logMu, W: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(o, &Pipeline{Vault: e.vault, Keys: e.keys, Logger: log})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, l.Addr().String()
}

// slowClient is a connection whose replies are read by a goroutine, so that
// the test can keep writing (slowly) while it watches what the server says.
type slowClient struct {
	conn    net.Conn
	replies chan string // final reply lines; closed at EOF or error
	closed  chan struct{}
	mu      sync.Mutex
	readErr error
}

func dialSlow(t *testing.T, addr string, bound time.Duration) *slowClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// The deadline bounds the test, not the server: the assertions below
	// are about what the server does well before it.
	conn.SetDeadline(time.Now().Add(bound))
	c := &slowClient{conn: conn, replies: make(chan string, 64), closed: make(chan struct{})}
	go func() {
		defer close(c.replies)
		defer close(c.closed)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				c.mu.Lock()
				c.readErr = err
				c.mu.Unlock()
				return
			}
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			c.replies <- strings.TrimRight(line, "\r\n")
		}
	}()
	return c
}

// expect reads the next reply and checks its code.
func (c *slowClient) expect(t *testing.T, code string) string {
	t.Helper()
	r, ok := <-c.replies
	if !ok {
		t.Fatalf("connection ended (%v), want a %s reply", c.err(), code)
	}
	if !strings.HasPrefix(r, code+" ") {
		t.Fatalf("reply %q, want %s", r, code)
	}
	return r
}

func (c *slowClient) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// trickle writes s one byte per interval until the server says something
// or closes the connection (or s runs out). It returns how many bytes went.
func (c *slowClient) trickle(s string, interval time.Duration) int {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < len(s); i++ {
		if _, err := c.conn.Write([]byte{s[i]}); err != nil {
			return i
		}
		select {
		case <-c.closed:
			return i + 1
		case <-tick.C:
		}
		if len(c.replies) > 0 {
			return i + 1
		}
	}
	return len(s)
}

// rest returns the remaining replies once the server has closed the
// connection, and how long after start that was.
func (c *slowClient) rest(t *testing.T, start time.Time) ([]string, time.Duration) {
	t.Helper()
	var out []string
	for r := range c.replies {
		out = append(out, r)
	}
	took := time.Since(start)
	// Closing with bytes of ours unread resets the connection.
	if err := c.err(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the server did not close the connection (replies %q): %v", out, err)
	}
	return out, took
}

func TestSlowloris(t *testing.T) {
	const readTimeout = 1500 * time.Millisecond
	// Scheduling on a loaded 2-core machine (-race, -p 2). Far below the
	// minute the trickled input would keep a session open without them.
	const slack = 5 * time.Second
	e := newEnv(t, envOpts{})
	srv, addr := startServer(t, e, Options{
		ReadTimeout: readTimeout, WriteTimeout: readTimeout, DataTimeout: 10 * time.Second,
		NextHop: e.hop.addr, MaxSessions: 4,
	})
	// A byte every 300 ms: never idle for as long as the read timeout, so
	// only a timeout that bounds the whole command (or the whole DATA)
	// can end these sessions.
	const interval = 300 * time.Millisecond
	long := strings.Repeat("x", 200)

	t.Run("idle after the greeting", func(t *testing.T) {
		t.Parallel()
		c := dialSlow(t, addr, time.Minute)
		start := time.Now()
		c.expect(t, "220")
		got, took := c.rest(t, start)
		if took > readTimeout+slack {
			t.Errorf("idle session closed after %v, want about %v", took, readTimeout)
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], "421 ") {
			t.Errorf("replies %q, want one 421", got)
		}
	})
	t.Run("a command a byte at a time", func(t *testing.T) {
		t.Parallel()
		c := dialSlow(t, addr, time.Minute)
		c.expect(t, "220")
		start := time.Now()
		sent := c.trickle("EHLO "+long+"\r\n", interval)
		got, took := c.rest(t, start)
		if took > readTimeout+slack {
			t.Errorf("session closed %v after the command began (%d bytes sent), want about %v", took, sent, readTimeout)
		}
		// Not a reply to the part of the command that arrived: only the
		// 421 (which a reset can take away).
		for _, r := range got {
			if !strings.HasPrefix(r, "421 ") {
				t.Errorf("replies %q, want only a 421", got)
			}
		}
	})
	t.Run("DATA a byte at a time", func(t *testing.T) {
		t.Parallel()
		c := dialSlow(t, addr, time.Minute)
		c.expect(t, "220")
		for _, cmd := range []string{"EHLO slow.test", "MAIL FROM:<slow@example.test>", "RCPT TO:<b@example.test>"} {
			fmt.Fprintf(c.conn, "%s\r\n", cmd)
			c.expect(t, "250")
		}
		start := time.Now()
		io.WriteString(c.conn, "DATA\r\n")
		c.expect(t, "354")
		sent := c.trickle("Subject: slow\r\n\r\n"+long, interval)
		// Whatever the server made of the data so far, the rest of the
		// session must not be read as commands: the client is in the
		// middle of a message, and a hidden transaction here would be
		// smuggled past the end of data.
		io.WriteString(c.conn, "\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"+
			"Subject: smuggled after a timeout\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n")
		got, took := c.rest(t, start)
		if took > readTimeout+slack {
			t.Errorf("session closed %v after DATA (%d bytes sent), want about %v", took, sent, readTimeout)
		}
		for _, r := range got {
			if !strings.HasPrefix(r, "421 ") && !strings.HasPrefix(r, "451 ") {
				t.Errorf("reply %q after a DATA that timed out; replies %q", r, got)
			}
		}
	})
	t.Cleanup(func() {
		if ids := e.archivedIDs(t); len(ids) != 0 {
			t.Errorf("slow sessions archived %d messages", len(ids))
		}
		if n := len(e.hop.messages()); n != 0 {
			t.Errorf("slow sessions forwarded %d messages", n)
		}
		if n := srv.active.Load(); n != 0 {
			t.Errorf("%d session slots still held after every slow session was closed", n)
		}
	})
}

// TestIdleConnections opens 500 connections and sends nothing: the session
// limit serves the first max_sessions, the others get 421 and are closed at
// once, the idle ones are cut by the read timeout, and then mail flows.
func TestIdleConnections(t *testing.T) {
	const (
		conns       = 500
		maxSessions = 100
		readTimeout = 2 * time.Second
	)
	e := newEnv(t, envOpts{storeOnly: true})
	srv, addr := startServer(t, e, Options{ReadTimeout: readTimeout, WriteTimeout: readTimeout, MaxSessions: maxSessions})

	type result struct {
		greeting string
		closedBy time.Duration // after the greeting
		err      error
	}
	results := make([]result, conns)
	var held []net.Conn
	var wg sync.WaitGroup
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(time.Minute))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil {
				results[i].err = err
				return
			}
			results[i].greeting = line
			at := time.Now()
			if _, err := io.Copy(io.Discard, r); err != nil {
				results[i].err = err
				return
			}
			results[i].closedBy = time.Since(at)
		}()
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()

	wg.Wait()
	var served, refused int
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Fatalf("connection %d: %v", i, r.err)
		case strings.HasPrefix(r.greeting, "220 "):
			served++
			if r.closedBy > readTimeout+3*time.Second {
				t.Errorf("idle session %d closed %v after its greeting, want about %v", i, r.closedBy, readTimeout)
			}
		case strings.HasPrefix(r.greeting, "421 "):
			refused++
			if r.closedBy > time.Second {
				t.Errorf("refused connection %d closed %v after its 421", i, r.closedBy)
			}
		default:
			t.Fatalf("connection %d greeted with %q", i, r.greeting)
		}
	}
	if served != maxSessions || refused != conns-maxSessions {
		t.Errorf("%d served and %d refused, want %d and %d", served, refused, maxSessions, conns-maxSessions)
	}
	if n := srv.active.Load(); n != 0 {
		t.Errorf("%d slots held after every idle session was closed", n)
	}

	// The slots are free again: a message goes through.
	res := (&testEnv{addr: addr}).send(t, "a@example.test", []string{"b@example.test"}, crlf("Subject: after the flood\n\nbody\n"), nil)
	if res.code != 250 || res.id() == "" {
		t.Fatalf("after the idle sessions: reply %d %q, want 250", res.code, res.text)
	}
}

// # MIME bombs

// bombReader streams a generated message and hashes it as it goes.
type bombReader struct {
	next func() []byte // the next piece, nil at the end
	buf  []byte
	sum  hash.Hash
	n    int64
}

func newBombReader(next func() []byte) *bombReader {
	return &bombReader{next: next, sum: sha256.New()}
}

func (b *bombReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.buf = b.next(); b.buf == nil {
			return 0, io.EOF
		}
	}
	n := copy(p, b.buf)
	b.sum.Write(p[:n])
	b.buf = b.buf[n:]
	b.n += int64(n)
	return n, nil
}

// pieces yields the given pieces, then the piece built by body(i) for i in
// [0, n), then tail.
func pieces(head string, n int, body func(i int, buf []byte) []byte, tail func(i int, buf []byte) []byte, tails int) func() []byte {
	i, j, started := 0, 0, false
	buf := make([]byte, 0, 256)
	return func() []byte {
		switch {
		case !started:
			started = true
			return []byte(head)
		case i < n:
			i++
			return body(i-1, buf[:0])
		case j < tails:
			j++
			return tail(j-1, buf[:0])
		}
		return nil
	}
}

func deepNesting(depth int) *bombReader {
	return newBombReader(pieces("From: bomb@example.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n", depth,
		func(i int, b []byte) []byte {
			b = append(b, "Content-Type: multipart/mixed; boundary=\"b"...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, "\"\r\n\r\n--b"...)
			b = strconv.AppendInt(b, int64(i), 10)
			return append(b, "\r\n"...)
		},
		func(i int, b []byte) []byte {
			if i == 0 {
				return append(b, "Content-Type: text/plain\r\n\r\nleaf\r\n"...)
			}
			b = append(b, "--b"...)
			b = strconv.AppendInt(b, int64(depth-i), 10)
			return append(b, "--\r\n"...)
		}, depth+1))
}

func manyParts(n int) *bombReader {
	return newBombReader(pieces("From: bomb@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n", n,
		func(i int, b []byte) []byte {
			b = append(b, "--p\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"p"...)
			b = strconv.AppendInt(b, int64(i), 10)
			return append(b, ".txt\"\r\n\r\npart\r\n"...)
		},
		func(int, []byte) []byte { return []byte("--p--\r\n") }, 1))
}

// hugePartHeader is a multipart whose second part has a header of about
// size bytes: one field folded over lines of 998 bytes.
func hugePartHeader(size int) *bombReader {
	line := "\t" + strings.Repeat("y", 995) + "\r\n"
	return newBombReader(pieces("From: bomb@example.test\r\nSubject: header\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=h\r\n\r\n"+
		"--h\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--h\r\nContent-Type: text/plain\r\nX-Huge: start\r\n", size/len(line),
		func(int, []byte) []byte { return []byte(line) },
		func(int, []byte) []byte { return []byte("\r\nbody\r\n--h--\r\n") }, 1))
}

func plainOfSize(size int64) *bombReader {
	m := newMessageReader(size)
	buf := make([]byte, 32<<10)
	return newBombReader(func() []byte {
		n, _ := m.Read(buf)
		if n == 0 {
			return nil
		}
		return buf[:n]
	})
}

// TestMIMEBombs sends each bomb through the whole pipeline (part map, seal,
// archive, next hop) and checks that its peak heap is that of a plain
// message of similar size, that the part map stays inside its bounds, and
// that the message is archived byte for byte all the same.
func TestMIMEBombs(t *testing.T) {
	e := newEnv(t, envOpts{maxBytes: 64 << 20, hopAddr: startDiscardHop(t)})
	relay := func(t *testing.T, m *bombReader) (string, uint64) {
		t.Helper()
		var id string
		peak := memtest.PeakHeap(func() {
			c, err := smtp.Dial(e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id = streamMessage(t, c, "bomb@example.test", m)
		})
		if id == "" {
			t.Fatal("no archive id in the reply")
		}
		return id, peak
	}
	checkArchived := func(t *testing.T, id string, m *bombReader) {
		t.Helper()
		got := sha256.Sum256(e.open(t, id))
		if want := m.sum.Sum(nil); string(got[:]) != string(want) {
			t.Errorf("archived message differs from the %d bytes sent", m.n)
		}
	}

	relay(t, plainOfSize(1<<20)) // warm up buffers and pools
	_, plain := relay(t, plainOfSize(12<<20))
	t.Logf("plain 12 MiB message: peak heap growth %.1f MiB", float64(plain)/(1<<20))
	// A 10 MB header kept whole, or 100,000 part records, would take more.
	const slack = 8 << 20

	for _, tc := range []struct {
		name    string
		bomb    func() *bombReader
		broken  string
		maxPart int
	}{
		{"nesting 50,000 deep", func() *bombReader { return deepNesting(50_000) }, "nesting depth over 32", 1},
		{"100,000 parts", func() *bombReader { return manyParts(100_000) }, "more than 1000 parts", 1000},
		{"10 MB part header", func() *bombReader { return hugePartHeader(10 << 20) }, "header over 65536 bytes", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.bomb()
			id, peak := relay(t, m)
			t.Logf("%d bytes: peak heap growth %.1f MiB", m.n, float64(peak)/(1<<20))
			if peak > plain+slack {
				t.Errorf("peak heap growth %d bytes, a plain 12 MiB message takes %d: the bomb escapes the memory bound", peak, plain)
			}
			man := e.manifest(t, id)
			if len(man.Parts) > tc.maxPart || len(man.Parts) == 0 {
				t.Errorf("manifest has %d parts, want 1..%d", len(man.Parts), tc.maxPart)
			}
			if !strings.Contains(man.Broken, tc.broken) {
				t.Errorf("manifest marks the structure broken as %q, want %q", man.Broken, tc.broken)
			}
			if man.Size != m.n {
				t.Errorf("manifest size %d, sent %d", man.Size, m.n)
			}
			checkArchived(t, id, m)
		})
	}
}
