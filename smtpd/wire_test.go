package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestReplyTexts: every reply a client sees is ours (replies.go), with an
// RFC 3463 enhanced code where one belongs, and none repeats an address or
// the client's HELO name. Each command is sent alone and its whole reply
// read, over a real loopback connection.
func TestReplyTexts(t *testing.T) {
	e := newEnv(t, envOpts{storeOnly: true})
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	// reply reads one whole reply and returns its lines.
	reply := func() []string {
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", lines, err)
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if len(l) < 4 || l[3] != '-' {
				return lines
			}
		}
	}
	if got := reply(); len(got) != 1 || got[0] != "220 mailvault.test ESMTP mailvaultd archive filter" {
		t.Errorf("greeting %q", got)
	}
	fmt.Fprintf(conn, "EHLO client.test\r\n")
	ehlo := reply()
	if ehlo[0] != "250-mailvault.test" {
		t.Errorf("EHLO reply starts %q, want our name", ehlo[0])
	}
	for _, l := range ehlo {
		if strings.Contains(l, "CHUNKING") {
			t.Errorf("EHLO offers CHUNKING: %q", ehlo)
		}
	}
	if last := ehlo[len(ehlo)-1]; last[3] != ' ' {
		t.Errorf("EHLO reply does not end: %q", ehlo)
	}

	for _, tc := range []struct{ send, want string }{
		{"NOOP", "250 2.0.0 Ok"},
		{"RCPT TO:<b@example.test>", "503 5.5.1 Send MAIL FROM first"},
		{"MAIL FROM:<a@example.test> FOO=1", "555 5.5.4 MAIL FROM parameter not recognised"},
		{"MAIL TO:<a@example.test>", "501 5.5.4 Syntax: MAIL FROM:<address>"},
		{"MAIL FROM:<a@example.test> SIZE=x", "501 5.5.4 Malformed SIZE parameter"},
		{"MAIL FROM:<a@example.test> SIZE=999999999", "552 5.3.4 Message exceeds the size limit"},
		{"MAIL FROM:<a@example.test> BODY=9BIT", "501 5.5.4 BODY must be 7BIT or 8BITMIME"},
		{"MAIL FROM:<a@example.test>", "250 2.1.0 Sender ok"},
		{"DATA", "503 5.5.1 Send RCPT TO first"},
		{"RCPT TO:<b@example.test> NOTIFY=NEVER", "555 5.5.4 Parameter not supported here"},
		{"RCPT TO:<b@example.test> X=1", "555 5.5.4 RCPT TO parameter not recognised"},
		{"RCPT FROM:<b@example.test>", "501 5.5.4 Syntax: RCPT TO:<address>"},
		{"RCPT TO:<b@example.test>", "250 2.1.5 Recipient ok"},
		{"DATA x", "501 5.5.4 Syntax: DATA, without arguments"},
		{"DATA", "354 Send the message; end it with <CR><LF>.<CR><LF>"},
		{"Subject: t\r\n\r\nx\r\n.", "250 2.0.0 Ok: archived as "},
		{"RSET", "250 2.0.0 Ok: transaction reset"},
		{"VRFY b@example.test", "252 2.5.0 Addresses are not verified here; send the message"},
		{"HELP", "502 5.5.1 Command not implemented"},
		{"FOOB x", "500 5.5.2 Command not recognised"},
		{"FOOBAR", "500 5.5.2 Syntax error: command not recognised"},
		{"STARTTLS", "502 5.5.1 STARTTLS not offered"},
		{"AUTH PLAIN AGEAYg==", "502 5.5.1 AUTH not offered"},
		{"BDAT 3 LAST\r\na", "503 5.5.1 BDAT not offered"}, // the chunk is "a\r\n"
		{"HELO client.test", "250 2.0.0 mailvault.test"},
		{"HELO", "501 5.5.4 Send a domain or address literal with EHLO or HELO"},
		{"QUIT", "221 2.0.0 Closing connection"},
	} {
		fmt.Fprintf(conn, "%s\r\n", tc.send)
		got := reply()
		if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) || (got[0] != tc.want && !strings.HasSuffix(tc.want, " ")) {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
		if strings.Contains(got[0], "example.test") || strings.Contains(got[0], "client.test") {
			t.Errorf("%q: the reply %q repeats what the client sent", tc.send, got[0])
		}
	}
}

// TestReplyTextsTooManyRecipients: go-smtp's own recipient limit answers
// in our words too.
func TestReplyTextsTooManyRecipients(t *testing.T) {
	e := newEnv(t, envOpts{storeOnly: true})
	_, addr := startServer(t, e, Options{MaxRecipients: 1})
	replies := converse(t, addr, "EHLO client.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nQUIT\r\n")
	if len(replies) != 6 || replies[4] != "452 4.5.3 Too many recipients for this transaction" {
		t.Errorf("replies %q, want the second RCPT answered 452 4.5.3 in our words", replies)
	}
}

// TestBDATRefused: BDAT is not offered and is answered 503 5.5.1 however
// it comes; its chunk is read past, never taken for commands; nothing is
// archived or forwarded for it; and the session goes on. go-smtp's own
// BDAT (whose abandoned transaction's result can leak into the next) is
// never reached.
func TestBDATRefused(t *testing.T) {
	hop := startRawHop(t)
	e := newEnv(t, envOpts{hopAddr: hop.addr})
	const tx = "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
	var after string // a message of its own for each case: a repeat would be a duplicate
	okAfter := []string{"250", "250", "250", "354", "250", "221"}
	after = "RSET\r\n" + tx + "DATA\r\nSubject: after\r\n\r\nx\r\n.\r\nQUIT\r\n"
	for _, tc := range []struct {
		name, script string
		codes        []string
	}{
		// The chunk is a command line: were it read as one, the session
		// would end at the 503.
		{"chunk holding QUIT", "EHLO a.test\r\n" + tx + "BDAT 6 LAST\r\nQUIT\r\n" + after,
			append([]string{"220", "250", "250", "250", "503"}, okAfter...)},
		{"chunk holding a transaction", "EHLO a.test\r\n" + tx + fmt.Sprintf("BDAT %d\r\n", len(tx+"DATA\r\n")) + tx + "DATA\r\n" + "BDAT 0 LAST\r\n" + after,
			append([]string{"220", "250", "250", "250", "503", "503"}, okAfter...)},
		{"lower case", "EHLO a.test\r\n" + tx + "bdat 4 last\r\nNOOP" + after,
			append([]string{"220", "250", "250", "250", "503"}, okAfter...)},
		{"before MAIL", "EHLO a.test\r\nBDAT 4\r\nNOOP" + after,
			append([]string{"220", "250", "503"}, okAfter...)},
		{"bare verb", "EHLO a.test\r\n" + tx + "BDAT\r\n" + after,
			append([]string{"220", "250", "250", "250", "503"}, okAfter...)},
		// With a size that cannot be read there is no chunk to find:
		// what follows is a command, as after any malformed command.
		{"bad size", "EHLO a.test\r\n" + tx + "BDAT x\r\n" + after,
			append([]string{"220", "250", "250", "250", "503"}, okAfter...)},
		// Two abandoned BDAT transactions, then DATA: nothing leaks.
		{"twice", "EHLO a.test\r\n" + tx + "BDAT 3\r\nabcRSET\r\n" + tx + "BDAT 3\r\nabc" + after,
			append([]string{"220", "250", "250", "250", "503", "250", "250", "250", "503"}, okAfter...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hop.reset()
			before := len(e.archivedIDs(t))
			replies := converse(t, e.addr, strings.ReplaceAll(tc.script, "Subject: after", "Subject: after "+tc.name))
			checkCodes(t, replies, tc.codes)
			for _, l := range replies {
				if strings.HasPrefix(l, "503 ") && l != "503 5.5.1 BDAT not offered" {
					t.Errorf("BDAT answered %q", l)
				}
			}
			ids := archivedIn(replies)
			if len(ids) != 1 || len(e.archivedIDs(t))-before != 1 {
				t.Fatalf("replies %q: want exactly the DATA transaction archived", replies)
			}
			if got := e.open(t, ids[0]); string(got) != "Subject: after "+tc.name+"\r\n\r\nx\r\n" {
				t.Errorf("archived %q", got)
			}
			if msgs := hop.messages(); len(msgs) != 1 {
				t.Errorf("next hop received %d messages, want 1", len(msgs))
			}
		})
	}
}

// TestDataReadByRFC5321: the message content archived is what RFC 5321
// reads in the client's DATA (rfcData), in the places go-smtp's own reader
// gets wrong (".\rB" lost its CR; after CR CR LF a stuffed dot was kept)
// and around them; the next hop gets the same with CRLF line endings.
func TestDataReadByRFC5321(t *testing.T) {
	hop := startRawHop(t)
	e := newEnv(t, envOpts{hopAddr: hop.addr})
	for _, body := range []string{
		"Subject: a\r\n\r\n.\rB",                           // go-smtp: "B"
		"Subject: a\r\n\r\n.\r\rB",                         // go-smtp: "\rB"
		"Subject: a\r\n\r\n.\r\r\n..after",                 // a leading dot's line ending in CR CRLF, then a stuffed line
		"Subject: a\r\n\r\nx\r\r\n..stuffed",               // go-smtp kept both dots
		"Subject: a\r\n\r\nx\r\r\n.\rB\r\r\r\n..y",         // all of it
		"Subject: a\r\n\r\nx\r\r\r\n",                      // odd CRs before the end: representable
		"Subject: a\r\n\r\n\r\r\r\r\r\n..",                 // a content line "." after CRs
		"Subject: a\r\n\r\n..\r\n...\r\n.\r.\r\n.x\r\n\rz", // dots and CRs
	} {
		t.Run(fmt.Sprintf("%q", body), func(t *testing.T) {
			hop.reset()
			line := e.sendRaw(t, []byte(body))
			if !strings.HasPrefix(line, "250 ") {
				t.Fatalf("end of DATA answered %q", line)
			}
			want, _ := rfcData([]byte(body + "\r\n.\r\n"))
			got := e.open(t, (sendResult{text: line}).id())
			if !bytes.Equal(got, want) {
				t.Errorf("archived\n%q\nwant (RFC 5321)\n%q", got, want)
			}
			msgs := hop.messages()
			if len(msgs) != 1 || !bytes.Equal(msgs[0].data, normalizeCRLF(want)) {
				t.Errorf("forwarded %+v, want one message %q", msgs, normalizeCRLF(want))
			}
			if err := hop.checkWire(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDataLastLineBareCR: a message whose last line ends in a bare CR
// ("x<CR><CR><LF>.<CR><LF>") never ended with go-smtp's reader (the client
// waited until a timeout). Its end is now seen; as go-smtp cannot take it
// byte for byte, it is refused 550 5.6.0, nothing is archived or forwarded,
// and the session goes on.
func TestDataLastLineBareCR(t *testing.T) {
	hop := startRawHop(t)
	e := newEnv(t, envOpts{hopAddr: hop.addr})
	const tx = "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
	for i, body := range []string{"Subject: a\r\n\r\nx\r", "\r", "Subject: a\r\n\r\n.\r\r\nx\r"} {
		t.Run(fmt.Sprintf("%q", body), func(t *testing.T) {
			hop.reset()
			before := len(e.archivedIDs(t))
			next := fmt.Sprintf("Subject: next %d\r\n\r\ny\r\n", i)
			replies := converse(t, e.addr, "EHLO a.test\r\n"+tx+body+"\r\n.\r\n"+tx+next+".\r\nQUIT\r\n")
			checkCodes(t, replies, []string{"220", "250", "250", "250", "354", "550", "250", "250", "354", "250", "221"})
			if replies[5] != replyBareCREnd {
				t.Errorf("refused with %q", replies[5])
			}
			ids := archivedIn(replies)
			if len(ids) != 1 || len(e.archivedIDs(t))-before != 1 {
				t.Fatalf("replies %q: want only the next transaction archived", replies)
			}
			if got := e.open(t, ids[0]); string(got) != next {
				t.Errorf("archived %q", got)
			}
			if msgs := hop.messages(); len(msgs) != 1 || string(msgs[0].data) != next {
				t.Errorf("next hop received %+v, want only the next message", msgs)
			}
		})
	}
}
