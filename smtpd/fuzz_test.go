package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzSession runs an arbitrary client byte stream (commands and data,
// pipelined in one write) against a real listener on loopback that
// archives to an fs store and forwards to rawHop, and checks what must hold
// whatever the client sends:
//
//   - the server ends the session when the client's input ends (no hang);
//   - every reply line is well formed, and no Go error reaches the client
//     as go-smtp's "554 ... transaction failed" (that would bounce mail);
//   - a message is archived only if its transaction was answered 250 with
//     its id, and every id answered is in the archive;
//   - every 250 went out to the next hop exactly once, as the archived
//     bytes with CRLF line endings, and the stream to the next hop holds no
//     bare CR or LF.
//
// Seeds are in testdata/fuzz/FuzzSession (interesting inputs kept from runs
// of `go test -fuzz FuzzSession`) and below.
func FuzzSession(f *testing.F) {
	for _, s := range sessionSeeds {
		f.Add([]byte(s))
	}
	hop := startRawHop(f)
	e := newEnv(f, envOpts{hopAddr: hop.addr, maxBytes: 1 << 20})
	_, addr := startServer(f, e, Options{
		NextHop: hop.addr, MaxMessageBytes: 1 << 20, MaxRecipients: 20, MaxLineLength: 4096,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
		NextHopTimeout: 5 * time.Second,
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		hop.reset()
		start := time.Now()
		replies, err := runSession(addr, in)
		if err != nil {
			t.Fatalf("session did not end with the input: %v (replies %q)", err, replies)
		}
		var ids []string
		for _, l := range replies {
			if !replyLine.MatchString(l) {
				t.Fatalf("malformed reply line %q", l)
			}
			if strings.Contains(l, "transaction failed") {
				t.Fatalf("a Go error reached the client: %q", l)
			}
			if l[3] == ' ' && strings.HasPrefix(l, "250 ") {
				if id := (sendResult{text: l}).id(); id != "" {
					ids = append(ids, id)
				}
			}
		}
		answered := map[string]bool{}
		for _, id := range ids {
			answered[id] = true
		}
		// Everything archived during this session, by receive time.
		ctx := context.Background()
		listed, _, err := e.vault.List(ctx, "", start, time.Time{}, 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range listed {
			if !answered[en.ID] {
				t.Errorf("message %s archived without a 250 naming it (replies %q)", en.ID, replies)
			}
		}
		msgs := hop.messages()
		if len(msgs) != len(ids) {
			t.Fatalf("%d transactions answered 250, next hop received %d messages (replies %q)", len(ids), len(msgs), replies)
		}
		for i, id := range ids {
			if _, err := e.vault.Head(ctx, id); err != nil {
				t.Fatalf("answered id %s: %v", id, err)
			}
			// DATA cannot carry a message whose last line has no line
			// ending (BDAT can): the next hop gets one CRLF more.
			want := normalizeCRLF(e.open(t, id))
			if !bytes.HasSuffix(want, []byte("\r\n")) {
				want = append(want, '\r', '\n')
			}
			if got := msgs[i].data; !bytes.Equal(got, want) {
				t.Fatalf("message %s forwarded as\n%q\narchived (CRLF-normalised) as\n%q", id, got, want)
			}
		}
		if err := hop.checkWire(); err != nil {
			t.Fatal(err)
		}
	})
}

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// runSession writes in to a new connection, closes the writing half and
// reads every reply line until the server closes the connection.
func runSession(addr string, in []byte) ([]string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// A bound, not a wait: a session ends as soon as its input does.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		conn.Write(in)
		conn.(*net.TCPConn).CloseWrite()
	}()
	var replies []string
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			replies = append(replies, strings.TrimRight(line, "\r\n"))
		}
		if err == io.EOF || isReset(err) {
			return replies, nil
		}
		if err != nil {
			return replies, err
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

var sessionSeeds = []string{
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
	"HELO a.test\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n.\r\nQUIT\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test> BODY=8BITMIME SMTPUTF8 SIZE=20\r\nRCPT TO:<ü@example.test>\r\nDATA\r\nSubject: \xc3\xbc\r\n\r\n\xff\x00\r\n.\r\n" +
		"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nbefore\n.\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<v@example.test>\r\nDATA\r\nx\r\n.\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nbare\rcr\nlf\r\n..dot\r\n.\r\nRSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nBDAT 13 LAST\r\n0123456789abcQUIT\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nBDAT 10\r\n0123456789RSET\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n.\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nSubject: cut",
	"EHLO a.test\r\nMAIL FROM:<a@example.test> SIZE=99999999\r\nMAIL FROM:<a@example.test>\r\nDATA\r\nRCPT TO:<b@example.test>\r\nAUTH PLAIN AGIx\r\nSTARTTLS\r\nHELP\r\nDATA x\r\nQUIT\r\n",
	"EHLO a.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n.\r\nEHLO again\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n.\r\n",
}

// FuzzCRLFWriter: whatever the bytes and however they are cut into writes,
// crlfWriter gives what normalizeCRLF gives for the whole (every bare CR and
// bare LF turned into CRLF), with its usual buffer and with one so small
// that long runs bypass it.
func FuzzCRLFWriter(f *testing.F) {
	for _, s := range []string{"", "a\r\nb", "\r", "\n", "\r\r\n\n", "x\ry\nz\r\n", ".\r\n..\n", "\r\n\r"} {
		f.Add([]byte(s), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		want := normalizeCRLF(data)
		for _, size := range []int{32 << 10, 3} {
			var got bytes.Buffer
			w := &crlfWriter{w: &got, buf: make([]byte, 0, size)}
			rest := data
			for _, c := range cuts {
				k := min(int(c)%8, len(rest))
				if n, err := w.Write(rest[:k]); n != k || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
				}
				rest = rest[k:]
			}
			w.Write(rest)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("buffer %d, cuts %v: %q gives %q, want %q", size, cuts, data, got.Bytes(), want)
			}
		}
	})
}
