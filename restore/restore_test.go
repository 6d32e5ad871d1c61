package restore

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// hop is a next hop (a go-smtp server on loopback) that records what it
// gets and refuses recipients at refused.example.
type hop struct {
	mu   sync.Mutex
	got  []delivery
	addr string
}

type delivery struct {
	from, to string
	data     []byte
}

type hopSession struct {
	h        *hop
	from, to string
}

func (s *hopSession) Reset()        {}
func (s *hopSession) Logout() error { return nil }
func (s *hopSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *hopSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "x@refused.example" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.to = to
	return nil
}
func (s *hopSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.h.mu.Lock()
	s.h.got = append(s.h.got, delivery{s.from, s.to, b})
	s.h.mu.Unlock()
	return nil
}

func newHop(t *testing.T) *hop {
	h := &hop{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &hopSession{h: h}, nil }))
	srv.Domain = "hop.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

func newVault(t *testing.T) (*archive.Vault, sealer.KeyProvider) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "keyring.json")
	if err := sealer.InitKeyring(ring); err != nil {
		t.Fatal(err)
	}
	keys, err := sealer.LoadKeyring(ring)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsstore.New(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	return archive.NewVault(fs, keys.IndexKey()), keys
}

func deposit(t *testing.T, v *archive.Vault, keys sealer.KeyProvider, env archive.Envelope, raw []byte) string {
	ctx := context.Background()
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	w, err := sealed.Begin(ctx, v, keys, archive.NewID(at))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	fp := v.Fingerprint(env)
	scan := partmap.NewScanner(partmap.Limits{})
	if _, err := io.Copy(io.MultiWriter(w, fp, scan), bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	id, _, err := w.Commit(ctx, sealed.Record{Envelope: env, ReceivedAt: at, Parts: scan.Close(), Fingerprint: fp.Sum(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRestore: the message reaches the next hop from <> to the one
// recipient, CRLF-normalised and otherwise byte for byte; a refusal comes
// back as the next hop's reply; an unreachable hop is an error.
func TestRestore(t *testing.T) {
	v, keys := newVault(t)
	h := newHop(t)
	raw := []byte("Subject: bare\nFrom: a@b.example\n\nline one\r\nline two\rend\n")
	id := deposit(t, v, keys, archive.Envelope{From: "a@b.example", To: []string{"bob@example.com"}}, raw)
	s := &Sender{Vault: v, Keys: keys, NextHop: h.addr}

	reply, err := s.Restore(context.Background(), id, "bob@example.com")
	if err != nil || reply.Code != 250 {
		t.Fatalf("Restore = %+v, %v; want 250", reply, err)
	}
	h.mu.Lock()
	got := append([]delivery(nil), h.got...)
	h.mu.Unlock()
	want := "Subject: bare\r\nFrom: a@b.example\r\n\r\nline one\r\nline two\r\nend\r\n"
	if len(got) != 1 || got[0].from != "" || got[0].to != "bob@example.com" || string(got[0].data) != want {
		t.Fatalf("next hop got %+v, want one message from <> to bob: %q", got, want)
	}

	reply, err = s.Restore(context.Background(), id, "x@refused.example")
	if err != nil || reply.Code != 550 || reply.Enhanced != "5.1.1" || reply.Text != "no such user" {
		t.Errorf("refused Restore = %+v, %v; want the 550 5.1.1 reply", reply, err)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	s.NextHop = dead
	if _, err := s.Restore(context.Background(), id, "bob@example.com"); err == nil {
		t.Error("Restore through an unreachable hop succeeded")
	}
}

func TestOKReply(t *testing.T) {
	for text, want := range map[string]Reply{
		"2.0.0 Ok: queued as ABC": {250, "2.0.0", "Ok: queued as ABC"},
		"Ok":                      {250, "", "Ok"},
		"2.0 not enhanced":        {250, "", "2.0 not enhanced"},
	} {
		if got := okReply(text); got != want {
			t.Errorf("okReply(%q) = %+v, want %+v", text, got, want)
		}
	}
}
