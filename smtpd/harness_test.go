package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/archive/s3store"
	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/sealer/awskms"
)

// recordingHop is a real SMTP server on loopback standing in for Postfix's
// re-injection port: it records every message it accepts, and can be told to
// refuse.
type recordingHop struct {
	addr string
	srv  *smtp.Server

	mu       sync.Mutex
	got      []hopMessage
	dataFail *smtp.SMTPError // answer at the end of DATA
	rcptFail *smtp.SMTPError
}

type hopMessage struct {
	from string
	to   []string
	opts smtp.MailOptions
	data []byte
}

func startHop(t testing.TB) *recordingHop {
	t.Helper()
	h := &recordingHop{}
	h.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &hopSession{h: h}, nil
	}))
	h.srv.Domain = "hop.test"
	h.srv.EnableSMTPUTF8 = true
	h.srv.MaxMessageBytes = 200 << 20
	h.srv.MaxLineLength = 1 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	serveUntilCleanup(t, h.srv, l)
	return h
}

func (h *recordingHop) messages() []hopMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hopMessage(nil), h.got...)
}

func (h *recordingHop) set(rcpt, data *smtp.SMTPError) {
	h.mu.Lock()
	h.rcptFail, h.dataFail = rcpt, data
	h.mu.Unlock()
}

type hopSession struct {
	h   *recordingHop
	msg hopMessage
}

func (s *hopSession) Mail(from string, o *smtp.MailOptions) error {
	s.msg = hopMessage{from: from}
	if o != nil {
		s.msg.opts = *o
	}
	return nil
}
func (s *hopSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.h.mu.Lock()
	f := s.h.rcptFail
	s.h.mu.Unlock()
	if f != nil {
		return f
	}
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *hopSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.h.dataFail != nil {
		return s.h.dataFail
	}
	s.msg.data = b
	s.h.got = append(s.h.got, s.msg)
	return nil
}
func (s *hopSession) Reset()        {}
func (s *hopSession) Logout() error { return nil }

// serveUntilCleanup serves srv on l and, at cleanup, closes the listener and
// every connection's socket (go-smtp's own Server.Close races with
// connections still greeting).
func serveUntilCleanup(t testing.TB, srv *smtp.Server, l net.Listener) {
	tl := &trackingListener{Listener: l}
	done := make(chan struct{})
	go func() { srv.Serve(tl); close(done) }()
	t.Cleanup(func() {
		l.Close()
		<-done
		tl.mu.Lock()
		for _, c := range tl.conns {
			c.Close()
		}
		tl.mu.Unlock()
	})
}

type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// faultyKeys wraps a real provider and fails or panics on demand.
type faultyKeys struct {
	sealer.KeyProvider
	mu    sync.Mutex
	err   error
	panic bool
}

func (f *faultyKeys) set(err error, panics bool) {
	f.mu.Lock()
	f.err, f.panic = err, panics
	f.mu.Unlock()
}

func (f *faultyKeys) GenerateDataKey(ctx context.Context, c map[string]string) (*sealer.DataKey, error) {
	f.mu.Lock()
	err, p := f.err, f.panic
	f.mu.Unlock()
	if p {
		panic("injected panic in the key provider")
	}
	if err != nil {
		return nil, err
	}
	return f.KeyProvider.GenerateDataKey(ctx, c)
}

// faultyStore wraps the real fs store and fails writes on demand.
type faultyStore struct {
	archive.Store
	mu  sync.Mutex
	err error
}

func (f *faultyStore) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *faultyStore) Create(ctx context.Context, key string) (archive.ObjectWriter, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.Store.Create(ctx, key)
}

// testEnv is a running mailvaultd SMTP side with a real keyring, a real fs
// archive and (optionally) a recording next hop.
type testEnv struct {
	addr     string
	dir      string
	keys     *faultyKeys
	store    *faultyStore
	vault    *archive.Vault
	hop      *recordingHop
	srv      *Server
	logs     *bytes.Buffer
	logMu    *sync.Mutex
	maxBytes int64
	minio    *miniotest.Server // with s3kms
	kms      *kmstest.Server   // with s3kms
	bucket   string
}

type envOpts struct {
	storeOnly   bool
	maxBytes    int64
	maxSessions int
	hopAddr     string // overrides the recording hop
	openpgp     *OpenPGP
	s3kms       bool                                                // archive to a real MinIO, keys from the KMS test double
	indexer     func(dir string, kr *sealer.Keyring) ingest.Indexer // the catalog's, made in the env's directory; nil: none
}

func newEnv(t testing.TB, o envOpts) *testEnv {
	t.Helper()
	dir := t.TempDir()
	krPath := filepath.Join(dir, "keyring.json")
	if err := sealer.InitKeyring(krPath); err != nil {
		t.Fatal(err)
	}
	kr, err := sealer.LoadKeyring(krPath)
	if err != nil {
		t.Fatal(err)
	}
	var store archive.Store
	var keys sealer.KeyProvider = kr
	var minio *miniotest.Server
	var kms *kmstest.Server
	var bucket string
	if o.s3kms {
		kms = kmstest.Start(t)
		kms.SetEnv(t)
		kms.CreateAlias("alias/mailvault", kms.CreateKey())
		minio = miniotest.StartWith(t, miniotest.Config{AccessKey: kmstest.AccessKey, SecretKey: kmstest.SecretKey})
		bucket = "mailvault-test"
		minio.NewBucket(t, bucket, false)
		ctx := context.Background()
		if store, err = s3store.New(ctx, s3store.Options{Bucket: bucket, Region: miniotest.Region,
			Endpoint: minio.Endpoint, PathStyle: true, PartSize: s3store.MinPartSize}); err != nil {
			t.Fatal(err)
		}
		if keys, err = awskms.New(ctx, awskms.Options{KeyID: "alias/mailvault", Region: miniotest.Region, Endpoint: kms.URL}); err != nil {
			t.Fatal(err)
		}
	} else if store, err = fsstore.New(filepath.Join(dir, "archive")); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{dir: dir, keys: &faultyKeys{KeyProvider: keys}, store: &faultyStore{Store: store},
		logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, minio: minio, kms: kms, bucket: bucket}
	e.vault = archive.NewVault(e.store, kr.IndexKey())
	if o.maxBytes == 0 {
		o.maxBytes = 50 << 20
	}
	if o.maxSessions == 0 {
		o.maxSessions = 20
	}
	e.maxBytes = o.maxBytes
	opts := Options{
		Hostname: "mailvault.test", MaxMessageBytes: o.maxBytes, MaxRecipients: 1000,
		MaxSessions: o.maxSessions, MaxLineLength: 64 << 10,
		ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute, DataTimeout: 5 * time.Minute,
		NextHopTimeout: 10 * time.Second,
		OpenPGP:        o.openpgp,
	}
	if !o.storeOnly {
		if o.hopAddr != "" {
			opts.NextHop = o.hopAddr
		} else {
			e.hop = startHop(t)
			opts.NextHop = e.hop.addr
		}
	}
	log := slog.New(slog.NewTextHandler(testkit.LockedWriter{Mu: e.logMu, W: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := &Pipeline{Vault: e.vault, Keys: e.keys, Logger: log}
	if o.indexer != nil {
		p.Indexer = o.indexer(dir, kr)
	}
	e.srv = New(opts, p)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go e.srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		if t.Failed() {
			e.logMu.Lock()
			t.Logf("daemon log:\n%s", e.logs.String())
			e.logMu.Unlock()
		}
	})
	return e
}

// sendResult is what the SMTP client saw.
type sendResult struct {
	code int
	text string
	err  error
}

func (r sendResult) id() string {
	const p = "Ok: archived as "
	if i := strings.Index(r.text, p); i >= 0 {
		return strings.TrimSpace(r.text[i+len(p):])
	}
	return ""
}

// send delivers one message over SMTP and returns the server's final reply
// (or the first refusal).
func (e *testEnv) send(t *testing.T, from string, to []string, data []byte, mo *smtp.MailOptions) sendResult {
	t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, mo); err != nil {
		return replyOf(err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return replyOf(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return replyOf(err)
	}
	if _, err := w.Write(data); err != nil {
		return replyOf(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return replyOf(err)
	}
	c.Quit()
	return sendResult{code: 250, text: resp.StatusText}
}

func replyOf(err error) sendResult {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return sendResult{code: se.Code, text: se.Message, err: err}
	}
	return sendResult{err: err}
}

// streamMessage runs one transaction on c from from to b@example.test with
// the body streamed from r, and returns the archive id of the 250 ("" when
// the reply names none, as a bare server's does). Any failure fails tb.
func streamMessage(tb testing.TB, c *smtp.Client, from string, r io.Reader) string {
	tb.Helper()
	if err := c.Mail(from, nil); err != nil {
		tb.Fatal(err)
	}
	if err := c.Rcpt("b@example.test", nil); err != nil {
		tb.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		tb.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		tb.Fatalf("reply to the end of DATA: %v", err)
	}
	return (sendResult{text: resp.StatusText}).id()
}

// sendRaw runs one transaction writing data to the socket exactly as
// given (the caller does any dot-stuffing), so tests can send what a
// well-behaved client library would have corrected. It returns the reply
// line to the final ".".
func (e *testEnv) sendRaw(t *testing.T, data []byte) string {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(prefix string) string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("got %q, want %s", line, prefix)
			}
			return strings.TrimSpace(line)
		}
	}
	expect("220")
	for _, cmd := range []string{"EHLO client.test", "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		expect("250")
	}
	fmt.Fprintf(conn, "DATA\r\n")
	expect("354")
	conn.Write(data)
	conn.Write([]byte("\r\n.\r\n"))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// open decrypts archived message id, byte for byte.
func (e *testEnv) open(t *testing.T, id string) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := sealed.Copy(context.Background(), e.vault, e.keys, id, &b); err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	return b.Bytes()
}

// manifest decrypts the manifest of id.
func (e *testEnv) manifest(t *testing.T, id string) *sealed.Manifest {
	t.Helper()
	m, err := sealed.OpenManifest(context.Background(), e.vault, e.keys, id)
	if err != nil {
		t.Fatalf("manifest of %s: %v", id, err)
	}
	return m
}

// archivedIDs lists every archived message id.
func (e *testEnv) archivedIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		es, next, err := e.vault.List(context.Background(), "", time.Time{}, time.Time{}, 1000, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			ids = append(ids, en.ID)
		}
		if next == "" {
			return ids
		}
		cursor = next
	}
}

// storedFiles returns every stored object as the storage holds it: the files
// under the fs archive, or every object in the bucket fetched with a plain S3
// client.
func (e *testEnv) storedFiles(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if e.minio != nil {
		ctx := context.Background()
		c := e.minio.Client()
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &e.bucket})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.bucket, Key: o.Key})
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				out[*o.Key] = b
			}
		}
		return out
	}
	filepath.Walk(filepath.Join(e.dir, "archive"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				t.Fatal(rerr)
			}
			out[p] = b
		}
		return nil
	})
	return out
}
