package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// newMilterStack is newStack with mailvaultd as Postfix's before-queue
// milter (the snippet's commented alternative) instead of its content
// filter; maxBytes, when not 0, is mailvaultd's smtp.max_message_bytes.
func newMilterStack(t *testing.T, mailboxes []string, maxBytes int64) *stack {
	t.Helper()
	requireRoot(t)
	requireDebian(t, mailTools)
	s := &stack{dir: workDir(t), bucket: "mail-archive"}
	milterAddr := testkit.FreeAddr(t)
	s.pf = startPostfix(t, s.dir, postfixConfig{milter: milterAddr, mailboxes: mailboxes})
	s.mail = newMailIndex(s.pf)
	s.minio = miniotest.Start(t)
	s.minio.NewBucket(t, s.bucket, false)
	s.mv = newDaemon(t, s.dir, daemonConfig{listen: testkit.FreeAddr(t), milter: milterAddr, s3: s.minio,
		bucket: s.bucket, maxMessageBytes: maxBytes})
	keepArtifacts(t, s.dir)
	s.mv.Start()
	return s
}

// milterArchivedRE is mailvaultd's log line for a message the milter
// accepted, with Postfix's queue id and the archive id.
var milterArchivedRE = regexp.MustCompile(`msg=archived frontend=milter queue_id=([0-9A-Za-z]+) id=(\S+)`)

// milterArchiveIDs returns the archive ids mailvaultd logged for the
// message with this Message-ID (through the queue id cleanup logged for it).
func milterArchiveIDs(s *stack, messageID string) []string {
	queue := map[string]bool{}
	for _, m := range cleanupMessageIDRE.FindAllStringSubmatch(s.pf.log(), -1) {
		if m[2] == messageID {
			queue[m[1]] = true
		}
	}
	var ids []string
	for _, m := range milterArchivedRE.FindAllStringSubmatch(s.mv.log(), -1) {
		if queue[m[1]] {
			ids = append(ids, m[2])
		}
	}
	return ids
}

func waitMilterArchiveID(t *testing.T, s *stack, messageID string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ids := milterArchiveIDs(s, messageID)
		if len(ids) == 1 {
			return ids[0]
		}
		if len(ids) > 1 || time.Now().After(deadline) {
			t.Fatalf("message %s: archive ids %v in mailvaultd's log, want one\n%s", messageID, ids, tail([]byte(s.mv.log()), 3000))
		}
		time.Sleep(200 * time.Millisecond) // polling the log; not a stand-in for synchronisation
	}
}

// swaksRaw sends a swaks-built message and returns swaks's transcript,
// whatever the server answered.
func swaksRaw(t *testing.T, server, from, to, messageID string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swaks", append([]string{"--server", server, "--from", from, "--to", to,
		"--header", "Message-Id: <" + messageID + ">", "--timeout", "60"}, args...)...)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestE2EMilterDelivery: in milter mode, every message Postfix queues is
// archived once, and the archive holds exactly what Postfix queued: the
// Maildir copy without the delivery agent's Return-Path and Delivered-To
// and without Postfix's own Received header, which Postfix does not show a
// milter.
func TestE2EMilterDelivery(t *testing.T) {
	var (
		alice, bob, carol = "alice@" + mailDomain, "bob@" + mailDomain, "carol@" + mailDomain
		sender            = "sender@" + mailDomain
		utf8Sender        = "zoë@" + mailDomain
		utf8Rcpt          = "jörg.müller@" + mailDomain
		postmaster        = "postmaster@" + mailDomain
	)
	s := newMilterStack(t, []string{alice, bob, carol, sender, utf8Sender, utf8Rcpt, postmaster}, 0)
	s.mail.noMail = []string{sender, utf8Sender, postmaster}
	run := runToken()

	type message struct {
		name, id string
		to       []string
	}
	var msgs []*message
	add := func(name string, to []string) *message {
		m := &message{name: name, id: fmt.Sprintf("milter-%s.%s@%s", name, run, mailDomain), to: to}
		msgs = append(msgs, m)
		return m
	}
	m := add("plain", []string{alice})
	swaksMessage(t, s.dir, s.pf.SMTP, sender, m.to, m.id,
		"--header", "Subject: plain text", "--header", "X-Folded: one\n\ttwo\n  three", "--header", "X-Tight:no-space",
		"--body", "A plain text message.\n.leading dot\n\nEnd.\n")
	file := filepath.Join(s.dir, "attach.bin")
	writeRandom(t, file, 1<<20)
	m = add("attach-1m", []string{bob})
	swaksMessage(t, s.dir, s.pf.SMTP, sender, m.to, m.id, "--header", "Subject: attachment",
		"--body", "See the attachment.\n", "--attach-type", "application/octet-stream", "--attach-name", "attach.bin", "--attach", "@"+file)
	m = add("three-recipients", []string{alice, bob, carol})
	swaksMessage(t, s.dir, s.pf.SMTP, sender, m.to, m.id, "--header", "Subject: to three", "--body", "One message, three recipients.\n")
	m = add("smtputf8", []string{utf8Rcpt})
	msg := strings.ReplaceAll(fmt.Sprintf("From: Zoë <%s>\nTo: <%s>\nSubject: Grüße ✉\nDate: %s\nMessage-ID: <%s>\nMIME-Version: 1.0\n"+
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nSchöne Grüße — 日本語\n",
		utf8Sender, utf8Rcpt, time.Now().Format(time.RFC1123Z), m.id), "\n", "\r\n")
	if err := sendSMTP(s.pf.SMTP, utf8Sender, m.to, []byte(msg), true); err != nil {
		t.Fatalf("sending the SMTPUTF8 message: %v", err)
	}

	want := map[string][]string{}
	for _, m := range msgs {
		want[m.id] = m.to
	}
	s.mail.waitFor(t, want, 3*time.Minute)
	s.pf.waitQueueEmpty(time.Minute)

	var acked []string
	for _, m := range msgs {
		id := waitMilterArchiveID(t, s, m.id)
		acked = append(acked, id)
		t.Run(m.name, func(t *testing.T) {
			archived, err := s.mv.Get(id, filepath.Join(s.dir, "get-"+id+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, rcpt := range m.to {
				files := s.mail.files(m.id, rcpt)
				if len(files) != 1 {
					t.Fatalf("%s has %d copies, want 1", rcpt, len(files))
				}
				// Postfix 3.7 does not show a milter its own Received
				// header (checked: the first header event is the
				// client's first header), so the archive holds the
				// queued message below it. Not yet reconstructed: see
				// docs/OPERATIONS.md.
				queued, err := stripTrace(readFile(t, files[0]), 1)
				if err != nil {
					t.Fatalf("%s: %v", files[0], err)
				}
				if err := diffBytes(rcpt+": archived vs queued (Maildir copy)", archived, queued); err != nil {
					t.Error(err)
				}
			}
		})
	}
	count := s.mv.countArchived(acked)
	for _, id := range acked {
		if count.perID[id] != 1 {
			t.Errorf("archive id %s has %d message objects, want 1", id, count.perID[id])
		}
	}
	if len(count.unknown) > 0 || count.total != len(msgs) {
		t.Errorf("the archive has %d message objects for %d messages; unacknowledged: %v", count.total, len(msgs), count.unknown)
	}
	if exits := s.mv.UnexpectedExits(); len(exits) > 0 {
		t.Errorf("mailvaultd exited on its own: %v", exits)
	}
}

// TestE2EMilterDownDefers: with mailvaultd down, Postfix answers 4xx
// (milter_default_action = tempfail) and queues nothing; once it is up, the
// same message is queued, delivered and archived once.
func TestE2EMilterDownDefers(t *testing.T) {
	alice, sender := "alice@"+mailDomain, "sender@"+mailDomain
	s := newMilterStack(t, []string{alice, sender}, 0)
	id := "milter-down." + runToken() + "@" + mailDomain
	s.mv.stop()
	out := swaksRaw(t, s.pf.SMTP, sender, alice, id, "--body", "while mailvaultd is down\n")
	if !regexp.MustCompile(`(?m)^<\*\*\s+4\d\d `).MatchString(out) || strings.Contains(out, "queued as") {
		t.Fatalf("mailvaultd down: Postfix did not answer 4xx:\n%s", tail([]byte(out), 3000))
	}
	s.mv.Start()
	swaksMessage(t, s.dir, s.pf.SMTP, sender, []string{alice}, id, "--body", "after mailvaultd is up\n")
	s.mail.waitFor(t, map[string][]string{id: {alice}}, 2*time.Minute)
	archiveID := waitMilterArchiveID(t, s, id)
	if c := s.mv.countArchived([]string{archiveID}); c.total != 1 || c.perID[archiveID] != 1 {
		t.Errorf("archived %d messages (%v), want 1", c.total, c.unknown)
	}
}

// TestE2EMilterTooBig: a message over smtp.max_message_bytes is rejected
// 552 while the client is connected; nothing is queued or archived.
func TestE2EMilterTooBig(t *testing.T) {
	alice, sender := "alice@"+mailDomain, "sender@"+mailDomain
	s := newMilterStack(t, []string{alice, sender}, 64<<10)
	file := filepath.Join(s.dir, "big.bin")
	writeRandom(t, file, 200<<10)
	id := "milter-big." + runToken() + "@" + mailDomain
	out := swaksRaw(t, s.pf.SMTP, sender, alice, id, "--attach-type", "application/octet-stream", "--attach", "@"+file)
	if !regexp.MustCompile(`(?m)^<\*\*\s+552 5\.3\.4 `).MatchString(out) {
		t.Fatalf("Postfix did not answer 552 5.3.4:\n%s", tail([]byte(out), 3000))
	}
	if c := s.mv.countArchived(nil); c.total != 0 {
		t.Errorf("archive holds %d messages, want 0: %v", c.total, c.unknown)
	}
	if !s.pf.queueEmpty() {
		t.Errorf("Postfix queued something:\n%s", s.pf.queue())
	}
}
