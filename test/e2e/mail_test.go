package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// # Sending

// swaksMessage builds a message with swaks (swaks --dump-mail with args,
// e.g. --attach) and sends exactly those bytes with swaks to server. It
// returns the bytes sent (CRLF line endings, before dot-stuffing).
func swaksMessage(t testing.TB, dir, server, from string, to []string, messageID string, args ...string) []byte {
	t.Helper()
	base := []string{"--from", from, "--to", strings.Join(to, ","), "--header", "Message-Id: <" + messageID + ">"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dump := exec.CommandContext(ctx, "swaks", append(append(base, args...), "--dump-mail")...)
	var stderr bytes.Buffer
	dump.Stderr = &stderr
	msg, err := dump.Output()
	if err != nil {
		t.Fatalf("e2e: swaks --dump-mail: %v\n%s", err, stderr.String())
	}
	// --dump-mail ends the message oddly (a lone CR where the final "."
	// was); end it with one CRLF, which is what swaks --data sends.
	msg = append(bytes.TrimRight(toCRLF(msg), "\r\n"), "\r\n"...)
	// The file carries the closing "." itself, so swaks sends msg as it is
	// (without it, swaks adds a CRLF of its own before the dot).
	file := filepath.Join(dir, "sent-"+safeName(messageID)+".eml")
	if err := os.WriteFile(file, append(msg[:len(msg):len(msg)], ".\r\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	send := exec.CommandContext(ctx, "swaks", append(base,
		"--server", server, "--data", "@"+file, "--suppress-data", "--timeout", "120")...)
	out, err := send.CombinedOutput()
	if err != nil {
		t.Fatalf("e2e: swaks to %s: %v\n%s", server, err, tail(out, 4000))
	}
	if !regexp.MustCompile(`(?m)^<-\s+250 2\.0\.0 Ok: queued as`).Match(out) {
		t.Fatalf("e2e: swaks: Postfix did not queue the message:\n%s", tail(out, 4000))
	}
	return msg
}

// sendSMTP sends msg with a Go SMTP client; utf8 asks for SMTPUTF8 (which
// swaks cannot do), as a client with UTF-8 addresses must.
func sendSMTP(addr, from string, to []string, msg []byte, utf8 bool) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client." + mailDomain); err != nil {
		return err
	}
	if err := c.Mail(from, &smtp.MailOptions{UTF8: utf8, Body: smtp.Body8BitMIME}); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return fmt.Errorf("RCPT TO <%s>: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

// # Maildirs

// mailIndex finds delivered messages by Message-ID, reading each Maildir
// file's header once.
type mailIndex struct {
	p *postfix
	// noMail are mailboxes that must stay empty (senders, postmaster): a
	// message there is a bounce, and waitFor fails at once showing it.
	noMail []string

	mu   sync.Mutex
	seen map[string]bool                // files read
	byID map[string]map[string][]string // message id -> mailbox -> files
}

func newMailIndex(p *postfix) *mailIndex {
	return &mailIndex{p: p, seen: map[string]bool{}, byID: map[string]map[string][]string{}}
}

// scan reads the files that arrived since the last scan.
func (x *mailIndex) scan() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for addr := range x.p.boxes {
		for _, f := range x.p.delivered(addr) {
			if x.seen[f] {
				continue
			}
			id, err := fileMessageID(f)
			if err != nil {
				continue // vanished or unreadable: look again next time
			}
			x.seen[f] = true
			if x.byID[id] == nil {
				x.byID[id] = map[string][]string{}
			}
			x.byID[id][addr] = append(x.byID[id][addr], f)
		}
	}
}

// files returns the files in mailbox holding message id.
func (x *mailIndex) files(id, mailbox string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.byID[id][mailbox]...)
}

// count is the number of files in all Maildirs.
func (x *mailIndex) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.seen)
}

// waitFor polls until every message has reached every one of its recipients,
// and fails the test after limit naming what is missing.
func (x *mailIndex) waitFor(t testing.TB, want map[string][]string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	lastFlush := time.Now()
	for {
		x.scan()
		var missing []string
		for id, rcpts := range want {
			for _, r := range rcpts {
				if len(x.files(id, r)) == 0 {
					missing = append(missing, fmt.Sprintf("%s -> %s", id, r))
				}
			}
		}
		if len(missing) == 0 {
			return
		}
		for _, box := range x.noMail {
			if files := x.p.delivered(box); len(files) > 0 {
				b, _ := os.ReadFile(files[0])
				t.Fatalf("e2e: %s received mail (a bounce?) while waiting for delivery:\n%s", box, tail(b, 3000))
			}
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			if len(missing) > 20 {
				missing = append(missing[:20], fmt.Sprintf("... and %d more", len(missing)-20))
			}
			t.Fatalf("e2e: not delivered after %v:\n  %s\n--- postqueue -p ---\n%s\n--- maillog (end) ---\n%s",
				limit, strings.Join(missing, "\n  "), tail([]byte(x.p.queue()), 3000), tail([]byte(x.p.log()), 6000))
		}
		if time.Since(lastFlush) > 10*time.Second {
			x.p.flush()
			lastFlush = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fileMessageID reads the Message-ID from the header of a delivered file.
func fileMessageID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 256<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", err
	}
	head = head[:n]
	if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i+1]
	}
	for _, fld := range headerFields(toCRLF(head)) {
		if strings.EqualFold(fld.name, "Message-Id") {
			v := strings.TrimSpace(fld.value())
			return strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"), nil
		}
	}
	return "", fmt.Errorf("%s: no Message-ID", path)
}

// # Trace headers

// postfixTraceFields are the fields Postfix's virtual delivery agent puts on
// top of a message it stores.
var postfixTraceFields = map[string]bool{"return-path": true, "delivered-to": true, "x-original-to": true}

// stripTrace takes a delivered Maildir file (LF line endings) back to the
// bytes one stage earlier: it removes the delivery agent's Return-Path,
// Delivered-To and X-Original-To and then exactly hops Received: fields
// written by this Postfix, and restores CRLF. With a content filter,
// hops=1 gives what Postfix handed the filter and hops=2 what the client
// sent; without one, hops=1 gives what the client sent. Anything else on
// top is an error: nothing else may have been added.
func stripTrace(delivered []byte, hops int) ([]byte, error) {
	msg := toCRLF(delivered)
	fields := headerFields(msg)
	i, off := 0, 0
	for ; i < len(fields) && postfixTraceFields[strings.ToLower(fields[i].name)]; i++ {
		off += len(fields[i].raw)
	}
	if i == 0 {
		return nil, fmt.Errorf("no Return-Path/Delivered-To on top: not a Postfix delivery")
	}
	for h := 0; h < hops; h, i = h+1, i+1 {
		if i >= len(fields) || !strings.EqualFold(fields[i].name, "Received") {
			return nil, fmt.Errorf("Received: field %d of %d missing", h+1, hops)
		}
		if !strings.Contains(fields[i].raw, "by mx."+mailDomain+" (Postfix)") {
			return nil, fmt.Errorf("Received: field %d is not this Postfix's: %q", h+1, fields[i].raw)
		}
		off += len(fields[i].raw)
	}
	return msg[off:], nil
}

type headerField struct {
	name string
	raw  string // the whole field with its continuation lines and CRLFs
}

func (f headerField) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	return strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", ""), "\t", " ")
}

// headerFields splits the header of a CRLF message into fields.
func headerFields(msg []byte) []headerField {
	var out []headerField
	s := string(msg)
	for len(s) > 0 && !strings.HasPrefix(s, "\r\n") {
		end := 0
		for {
			i := strings.Index(s[end:], "\r\n")
			if i < 0 {
				end = len(s)
				break
			}
			end += i + 2
			if end >= len(s) || (s[end] != ' ' && s[end] != '\t') {
				break
			}
		}
		raw := s[:end]
		name, _, _ := strings.Cut(raw, ":")
		out = append(out, headerField{name: name, raw: raw})
		s = s[end:]
	}
	return out
}

// toCRLF turns bare LF into CRLF (Postfix stores Maildir files with LF).
func toCRLF(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/40)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// # The maillog

var (
	// "QUEUEID: message-id=<...>" from cleanup, for the first queueing and
	// for the re-injected copy alike.
	cleanupMessageIDRE = regexp.MustCompile(`postfix/cleanup\[\d+\]: ([0-9A-Za-z]+): message-id=<([^>]*)>`)
	// A delivery through the scan transport that mailvaultd accepted, with
	// the reply mailvaultd gave (the delivery contract).
	scanArchivedRE = regexp.MustCompile(`postfix/scan/smtp\[\d+\]: ([0-9A-Za-z]+): to=<([^>]*)>, .*status=sent \(250 2\.0\.0 Ok: archived as ([^\s)]+)\)`)
)

// archiveLog is what the maillog says about archiving.
type archiveLog struct {
	queueIDs map[string][]string        // message id -> queue ids
	archived map[string]map[string]bool // queue id -> archive ids
}

func parseArchiveLog(log string) *archiveLog {
	l := &archiveLog{queueIDs: map[string][]string{}, archived: map[string]map[string]bool{}}
	for _, m := range cleanupMessageIDRE.FindAllStringSubmatch(log, -1) {
		l.queueIDs[m[2]] = append(l.queueIDs[m[2]], m[1])
	}
	for _, m := range scanArchivedRE.FindAllStringSubmatch(log, -1) {
		if l.archived[m[1]] == nil {
			l.archived[m[1]] = map[string]bool{}
		}
		l.archived[m[1]][m[3]] = true
	}
	return l
}

// archiveIDs are the distinct archive ids mailvaultd answered for the
// message with this Message-ID, over every time Postfix handed it over.
func (l *archiveLog) archiveIDs(messageID string) []string {
	set := map[string]bool{}
	for _, q := range l.queueIDs[messageID] {
		for id := range l.archived[q] {
			set[id] = true
		}
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// waitArchiveID polls the maillog (postlogd writes it asynchronously) until
// it shows the archive id of the message, and fails after limit.
func waitArchiveID(t testing.TB, p *postfix, messageID string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ids := parseArchiveLog(p.log()).archiveIDs(messageID)
		switch {
		case len(ids) == 1:
			return ids[0]
		case len(ids) > 1:
			t.Fatalf("e2e: message <%s> was archived under %d ids: %v", messageID, len(ids), ids)
		case time.Now().After(deadline):
			t.Fatalf("e2e: the maillog shows no \"250 2.0.0 Ok: archived as <id>\" from the scan transport for <%s> after %v\n--- maillog (end) ---\n%s",
				messageID, limit, tail([]byte(p.log()), 6000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// # Small things

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}
