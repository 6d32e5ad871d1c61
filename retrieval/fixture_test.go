package retrieval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/archivelist"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/usersfile"
)

// The implementations the daemon wires in.
var (
	_ Lister = (*archivelist.Lister)(nil)
	_ Users  = (*usersfile.Users)(nil)
	_ Audit  = (*auditlog.Log)(nil)
)

// auditLine is a line of the audit log as a test reads it.
type auditLine struct {
	Seq int64 `json:"seq"`
	access.Event
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// countingStore is an archive.Store that counts the bytes read through Get
// and remembers every key it was asked about.
type countingStore struct {
	archive.Store
	read atomic.Int64
	// failGet makes every Get fail; flipKey and flipAt corrupt one byte of
	// one object as it is read.
	failGet atomic.Bool
	flipKey atomic.Value // string
	flipAt  atomic.Int64
	mu      sync.Mutex
	keys    []string
}

var _ archive.Store = (*countingStore)(nil)

func (s *countingStore) note(op, key string) {
	s.mu.Lock()
	s.keys = append(s.keys, op+" "+key)
	s.mu.Unlock()
}

// reset clears the counters and returns what they held.
func (s *countingStore) reset() (read int64, keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, s.keys = s.keys, nil
	return s.read.Swap(0), keys
}

func (s *countingStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.note("get", key)
	if s.failGet.Load() {
		return nil, errors.New("fs: disk on fire at /srv/secret/path")
	}
	rc, err := s.Store.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{ReadCloser: rc, n: &s.read, pos: off, flip: -1}
	if k, _ := s.flipKey.Load().(string); k == key {
		cr.flip = s.flipAt.Load()
	}
	return cr, nil
}

func (s *countingStore) Head(ctx context.Context, key string) (archive.ObjectInfo, error) {
	s.note("head", key)
	return s.Store.Head(ctx, key)
}

func (s *countingStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]archive.ObjectInfo, error) {
	s.note("list", prefix)
	return s.Store.List(ctx, prefix, startAfter, limit)
}

type countingReader struct {
	io.ReadCloser
	n    *atomic.Int64
	pos  int64 // object offset of the next byte
	flip int64 // object offset of the byte to corrupt, or -1
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	if r.flip >= r.pos && r.flip < r.pos+int64(n) {
		p[r.flip-r.pos] ^= 1
	}
	r.pos += int64(n)
	return n, err
}

// fixture is a retrieval server over a real fs store and local keyring, with
// messages archived the way the SMTP pipeline archives them.
type fixture struct {
	t         *testing.T
	dir       string
	keys      *sealer.Keyring
	store     *countingStore
	vault     *archive.Vault
	usersPath string
	users     *usersfile.Users
	auditPath string
	audit     *auditlog.Log
	srv       *httptest.Server
	tokens    map[string]string // user name -> token
	logs      *bytes.Buffer
	logMu     *sync.Mutex
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the handler's Options changed by opt
// (nil: as the daemon's defaults, with MaxPageSize 100).
func newFixtureWith(t *testing.T, opt func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	ringPath := filepath.Join(dir, "keyring.json")
	if err := sealer.InitKeyring(ringPath); err != nil {
		t.Fatal(err)
	}
	keys, err := sealer.LoadKeyring(ringPath)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsstore.New(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: fs}
	f := &fixture{
		t: t, dir: dir, keys: keys, store: store, vault: archive.NewVault(store, keys.IndexKey()),
		usersPath: filepath.Join(dir, "users.yaml"), auditPath: filepath.Join(dir, "log", "audit.jsonl"),
		tokens: map[string]string{}, logs: &bytes.Buffer{}, logMu: &sync.Mutex{},
	}
	for _, u := range []struct {
		name  string
		role  access.Role
		boxes []string
	}{
		{"alice", access.RoleReader, []string{"alice@example.com"}},
		{"bob", access.RoleReader, []string{"Bob@Example.COM", "bob+news@example.com"}},
		{"auditor", access.RoleAuditor, nil},
	} {
		tok, err := usersfile.Add(f.usersPath, u.name, u.role, u.boxes)
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[u.name] = tok
	}
	if f.users, err = usersfile.Load(f.usersPath); err != nil {
		t.Fatal(err)
	}
	if f.audit, err = auditlog.Open(f.auditPath); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs, mu: f.logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lister := archivelist.New(f.vault, func(ctx context.Context, id string) (*sealed.Manifest, error) {
		return sealed.OpenManifest(ctx, f.vault, keys, id)
	}, logger)
	o := Options{Vault: f.vault, Keys: keys, Lister: lister, Users: f.users, Audit: f.audit, Logger: logger, MaxPageSize: 100}
	if opt != nil {
		opt(&o)
	}
	h := NewHandler(o)
	f.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		f.srv.Close()
		f.audit.Close()
		if t.Failed() {
			f.logMu.Lock()
			t.Logf("server log:\n%s", f.logs.String())
			f.logMu.Unlock()
		}
	})
	return f
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// deposit archives raw as received from env at t, as the delivery core
// does, and returns the archive id.
func (f *fixture) deposit(env archive.Envelope, raw []byte, at time.Time) string {
	t := f.t
	t.Helper()
	ctx := context.Background()
	w, err := sealed.Begin(ctx, f.vault, f.keys, archive.NewID(at))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	fp := f.vault.Fingerprint(env)
	scan := partmap.NewScanner(partmap.Limits{})
	if _, err := io.Copy(io.MultiWriter(w, fp, scan), bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	id, dup, err := w.Commit(ctx, sealed.Record{Envelope: env, ReceivedAt: at, Parts: scan.Close(), Fingerprint: fp.Sum(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if dup || id != w.ID() {
		t.Fatalf("Commit = %s, duplicate %v; want %s", id, dup, w.ID())
	}
	return id
}

// response is one answered request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get requests path with the given bearer token ("" for none).
func (f *fixture) get(path, token string) response {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return response{res.StatusCode, res.Header, b}
}

// rawGet sends path byte for byte as the request target, bypassing any
// client-side URL clean-up.
func (f *fixture) rawGet(target, token string) response {
	f.t.Helper()
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	var req strings.Builder
	req.WriteString("GET " + target + " HTTP/1.1\r\nHost: " + f.srv.Listener.Addr().String() + "\r\nConnection: close\r\n")
	if token != "" {
		req.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := conn.Write([]byte(req.String())); err != nil {
		f.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		f.t.Fatalf("GET %.80s: %v", target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

// auditLines returns the records of the audit log.
func (f *fixture) auditLines() []auditLine {
	f.t.Helper()
	b, err := os.ReadFile(f.auditPath)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []auditLine
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var l auditLine
		if err := json.Unmarshal(line, &l); err != nil {
			f.t.Fatalf("audit line %s: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

// waitAudit waits until the log holds n records (a record is written as
// the response ends, so it may land just after the client has read it).
func (f *fixture) waitAudit(n int) []auditLine {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls := f.auditLines()
		if len(ls) >= n || time.Now().After(deadline) {
			return ls
		}
		time.Sleep(5 * time.Millisecond)
	}
}
