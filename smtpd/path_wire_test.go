package smtpd

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQuotedLocalPartsReachTheNextHop sends quoted local parts as a client
// writes them and checks that the next hop gets the same addresses, not
// addresses cut short with the rest taken for ESMTP parameters (the outside
// review's RCPT TO:<"bob+x> ORCPT=rfc822;x"@example.test>).
func TestQuotedLocalPartsReachTheNextHop(t *testing.T) {
	e := newEnv(t, envOpts{})
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(line)
			}
		}
	}
	send := func(cmd, want string) {
		t.Helper()
		fmt.Fprintf(conn, "%s\r\n", cmd)
		if got := reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("%s: got %q, want %s", cmd, got, want)
		}
	}
	reply() // greeting
	send("EHLO client.test", "250")
	send(`MAIL FROM:<"odd sender"@example.test>`, "250")
	send(`RCPT TO:<"bob+x> ORCPT=rfc822;x"@example.test>`, "250")
	send(`RCPT TO:<"bob> NOTIFY=NEVER"@example.test>`, "250")
	send(`RCPT TO:<"carol smith"@other.test>`, "250")
	send("DATA", "354")
	send("Subject: quoted\r\n\r\nbody\r\n.", "250 2.0.0 Ok: archived as")
	send("QUIT", "221")

	msgs := e.hop.messages()
	if len(msgs) != 1 {
		t.Fatalf("next hop got %d messages, want 1", len(msgs))
	}
	want := []string{"bob+x> ORCPT=rfc822;x@example.test", "bob> NOTIFY=NEVER@example.test", "carol smith@other.test"}
	if m := msgs[0]; m.from != "odd sender@example.test" || !slices.Equal(m.to, want) {
		t.Errorf("next hop got MAIL FROM %q RCPT TO %q; want %q and %q", m.from, m.to, "odd sender@example.test", want)
	}
}
