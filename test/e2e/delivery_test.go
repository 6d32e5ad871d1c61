package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPostfixHarness checks the harness itself, without mailvaultd: the
// Postfix instance built from postfix-notes.md and the shipped snippets (with
// the content filter switched off) takes mail from swaks and delivers it to
// every recipient's Maildir byte for byte, apart from its own trace fields.
func TestPostfixHarness(t *testing.T) {
	requireRoot(t)
	requireDebian(t, mailTools)
	dir := workDir(t)
	keepArtifacts(t, dir)
	boxes := []string{"alice@" + mailDomain, "bob@" + mailDomain}
	pf := startPostfix(t, dir, postfixConfig{mailboxes: boxes})
	mail := newMailIndex(pf)

	id := "harness-" + runToken() + "@" + mailDomain
	sent := swaksMessage(t, dir, pf.SMTP, "sender@"+mailDomain, boxes, id, "--body", "Postfix alone.\n")
	mail.waitFor(t, map[string][]string{id: boxes}, time.Minute)
	for _, box := range boxes {
		files := mail.files(id, box)
		if len(files) != 1 {
			t.Fatalf("%s has %d copies of <%s>, want 1", box, len(files), id)
		}
		got := readFile(t, files[0])
		asSent, err := stripTrace(got, 1)
		if err != nil {
			t.Fatalf("%s: %v\n%s", files[0], err, got)
		}
		if err := diffBytes(box, asSent, sent); err != nil {
			t.Error(err)
		}
	}
	pf.waitQueueEmpty(time.Minute)
}

// TestE2EDelivery sends mail through Postfix with mailvaultd as its content
// filter and MinIO as the archive, and checks for each message that every
// recipient's Maildir has exactly what was sent (apart from Postfix's trace
// fields), that it was archived once however many recipients it has, and
// that `mailvaultd get` returns the bytes Postfix handed the filter.
func TestE2EDelivery(t *testing.T) {
	var (
		alice, bob, carol = "alice@" + mailDomain, "bob@" + mailDomain, "carol@" + mailDomain
		sender            = "sender@" + mailDomain
		utf8Sender        = "zoë@" + mailDomain
		utf8Rcpt          = "jörg.müller@" + mailDomain
		postmaster        = "postmaster@" + mailDomain
	)
	s := newStack(t, []string{alice, bob, carol, sender, utf8Sender, utf8Rcpt, postmaster})
	s.mail.noMail = []string{sender, utf8Sender, postmaster}
	run := runToken()

	type message struct {
		name string
		id   string // Message-ID without <>
		from string
		to   []string
		sent []byte
	}
	var msgs []*message
	add := func(name, from string, to []string) *message {
		m := &message{name: name, id: fmt.Sprintf("%s.%s@%s", name, run, mailDomain), from: from, to: to}
		msgs = append(msgs, m)
		return m
	}

	m := add("plain", sender, []string{alice})
	m.sent = swaksMessage(t, s.dir, s.pf.SMTP, m.from, m.to, m.id,
		"--header", "Subject: plain text", "--body", "A plain text message.\n.leading dot\n\nEnd.\n")

	for _, size := range []struct {
		name string
		n    int
	}{{"attach-1k", 1 << 10}, {"attach-1m", 1 << 20}, {"attach-30m", 30 << 20}} {
		file := filepath.Join(s.dir, size.name+".bin")
		writeRandom(t, file, size.n)
		m := add(size.name, sender, []string{bob})
		m.sent = swaksMessage(t, s.dir, s.pf.SMTP, m.from, m.to, m.id,
			"--header", "Subject: "+size.name, "--body", "See the attachment.\n",
			"--attach-type", "application/octet-stream", "--attach-name", size.name+".bin", "--attach", "@"+file)
	}

	m = add("three-recipients", sender, []string{alice, bob, carol})
	m.sent = swaksMessage(t, s.dir, s.pf.SMTP, m.from, m.to, m.id,
		"--header", "Subject: to three", "--body", "One message, three recipients, one archived copy.\n")

	m = add("smtputf8", utf8Sender, []string{utf8Rcpt})
	m.sent = []byte(strings.ReplaceAll(fmt.Sprintf(`From: Zoë <%s>
To: Jörg Müller <%s>
Subject: Grüße aus Köln ✉
Date: %s
Message-ID: <%s>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Schöne Grüße — ½ € — 日本語 — 🙂
`, utf8Sender, utf8Rcpt, time.Now().Format(time.RFC1123Z), m.id), "\n", "\r\n"))
	if err := sendSMTP(s.pf.SMTP, utf8Sender, m.to, m.sent, true); err != nil {
		t.Fatalf("sending the SMTPUTF8 message to Postfix: %v", err)
	}

	want := map[string][]string{}
	for _, m := range msgs {
		want[m.id] = m.to
	}
	s.mail.waitFor(t, want, 3*time.Minute)
	s.pf.waitQueueEmpty(time.Minute)

	var acked []string
	for _, m := range msgs {
		id := waitArchiveID(t, s.pf, m.id, 30*time.Second)
		acked = append(acked, id)
		t.Run(m.name, func(t *testing.T) {
			var handed []byte
			for _, rcpt := range m.to {
				files := s.mail.files(m.id, rcpt)
				if len(files) != 1 {
					t.Fatalf("%s has %d copies, want 1", rcpt, len(files))
				}
				got := readFile(t, files[0])
				asSent, err := stripTrace(got, 2)
				if err != nil {
					t.Fatalf("%s: %v", files[0], err)
				}
				if err := diffBytes(rcpt+": delivered vs sent", asSent, m.sent); err != nil {
					t.Error(err)
				}
				h, _ := stripTrace(got, 1)
				if handed == nil {
					handed = h
				} else if err := diffBytes(rcpt+": copies differ", h, handed); err != nil {
					t.Error(err)
				}
			}
			back, err := s.mv.Get(id, filepath.Join(s.dir, "get-"+id+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := diffBytes("mailvaultd get "+id+" vs what Postfix handed the filter", back, handed); err != nil {
				t.Error(err)
			}
			raw, err := s.mv.Raw(id)
			if err != nil {
				t.Fatal(err)
			}
			if err := diffBytes("GET /v1/messages/"+id+"/raw vs what Postfix handed the filter", raw, handed); err != nil {
				t.Error(err)
			}
		})
	}

	// Archived once per message, however many recipients.
	count := s.mv.countArchived(acked)
	for _, id := range acked {
		if count.perID[id] != 1 {
			t.Errorf("archive id %s has %d message objects under %s, want 1", id, count.perID[id], archiveMessagePrefix)
		}
	}
	if len(count.unknown) > 0 || count.total != len(msgs) {
		t.Errorf("the archive has %d message objects for %d messages; not acknowledged to Postfix: %v",
			count.total, len(msgs), count.unknown)
	}
	// Not bounced: nothing came back to the senders or the postmaster.
	for _, box := range []string{sender, utf8Sender, postmaster} {
		if files := s.pf.delivered(box); len(files) > 0 {
			t.Errorf("%s received %d messages (bounces?); first:\n%s", box, len(files), tail(readFile(t, files[0]), 2000))
		}
	}
	if exits := s.mv.UnexpectedExits(); len(exits) > 0 {
		t.Errorf("mailvaultd exited on its own: %v", exits)
	}
}

// runToken makes Message-IDs unique to one run.
func runToken() string {
	return fmt.Sprintf("%x", time.Now().UnixNano())
}

// writeRandom writes n pseudo-random bytes (fixed seed: every run sends the
// same attachments).
func writeRandom(t testing.TB, path string, n int) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{'m', 'a', 'i', 'l', 'v', 'a', 'u', 'l', 't'})
	b := make([]byte, n)
	rng.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
