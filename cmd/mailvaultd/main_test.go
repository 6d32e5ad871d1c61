package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.RunWithBinary(m)) }

// buildBinary returns mailvaultd built once per test binary.
func buildBinary(t *testing.T) string { return testkit.Binary(t) }

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, bin string, dir string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code, out.String(), errb.String()}
}

// writeConfig writes testkit's configuration for dir (every path under it,
// store-only, free loopback ports), as changed by change, and returns it.
func writeConfig(t *testing.T, dir string, change func(c *config.Config)) *config.Config {
	t.Helper()
	c := testkit.Config(t, dir)
	if change != nil {
		change(c)
	}
	testkit.WriteConfig(t, filepath.Join(dir, "mailvaultd.yaml"), c)
	return c
}

func TestCheckConfig(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, nil).File

	r := runCLI(t, bin, dir, "check-config", "-config", cfg)
	if r.code != exitConfig || !strings.Contains(r.stderr, "keys.local.keyring") || !strings.Contains(r.stderr, "keys init") {
		t.Errorf("without a keyring: exit %d, stderr %q; want %d naming keys.local.keyring and the fix", r.code, r.stderr, exitConfig)
	}
	if r := runCLI(t, bin, dir, "keys", "init", "-config", cfg); r.code != 0 {
		t.Fatalf("keys init: %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, bin, dir, "keys", "init", "-config", cfg); r.code == 0 {
		t.Error("keys init overwrote an existing keyring")
	}
	if r := runCLI(t, bin, dir, "check-config", "-config", cfg); r.code != 0 {
		t.Errorf("valid config: exit %d, %s", r.code, r.stderr)
	}
	if r := runCLI(t, bin, dir, "hold", strings.Repeat("0", 39), "on", "-config", cfg); r.code != exitFail ||
		!strings.Contains(r.stderr, "legal holds need archive.backend: s3") {
		t.Errorf("hold on an fs archive: exit %d, stderr %q; want %d naming the s3 backend", r.code, r.stderr, exitFail)
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("smtp:\n  lisen: x\n"), 0o600)
	r = runCLI(t, bin, dir, "check-config", "-config", filepath.Join(dir, "bad.yaml"))
	if r.code != exitConfig || !strings.Contains(r.stderr, "bad.yaml:2: smtp.lisen: unknown key") {
		t.Errorf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, bin, dir, "serve", "-config", filepath.Join(dir, "bad.yaml")); r.code != exitConfig {
		t.Errorf("serve with a bad config: exit %d, want %d", r.code, exitConfig)
	}
	if r := runCLI(t, bin, dir, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "mailvaultd ") {
		t.Errorf("version: %d %q", r.code, r.stdout)
	}
}

// runningDaemon is a running `mailvaultd serve`.
type runningDaemon struct {
	cmd  *exec.Cmd
	logs *testkit.Lines // its standard error, every line
}

func startDaemon(t *testing.T, bin, dir string, args ...string) *runningDaemon {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &runningDaemon{cmd: cmd, logs: testkit.ReadLines(stderr)}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	d.waitLog(t, "mailvaultd ready", 30*time.Second) // ready when it says so
	return d
}

// archiveID takes the id from "2.0.0 Ok: archived as <id>".
func archiveID(t *testing.T, reply string) string {
	t.Helper()
	const p = "Ok: archived as "
	i := strings.Index(reply, p)
	if i < 0 {
		t.Fatalf("reply %q has no archive id", reply)
	}
	return reply[i+len(p):]
}

// setup is a built binary and a directory with a config on free loopback
// ports and a keyring made by `keys init`.
type setup struct {
	bin, dir, cfg      string
	smtpAddr, httpAddr string
}

func newSetup(t *testing.T) setup {
	t.Helper()
	s := setup{bin: buildBinary(t), dir: t.TempDir()}
	c := writeConfig(t, s.dir, nil)
	s.cfg, s.smtpAddr, s.httpAddr = c.File, c.SMTP.Listen, c.Retrieval.Listen
	if r := runCLI(t, s.bin, s.dir, "keys", "init", "-config", s.cfg); r.code != 0 {
		t.Fatalf("keys init: %s", r.stderr)
	}
	return s
}

// waitLog waits up to limit for a daemon log line containing want, after
// the line the previous wait found.
func (d *runningDaemon) waitLog(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	d.logs.Wait(t, want, limit)
}

func TestServeGetStop(t *testing.T) {
	st := newSetup(t)
	bin, dir, cfg, smtpAddr := st.bin, st.dir, st.cfg, st.smtpAddr
	d := startDaemon(t, bin, dir, "-config", cfg)

	msg := []byte("From: a@example.test\r\nTo: b@example.test\r\nSubject: cli test\r\n\r\nhello from the CLI test\r\n")
	id := sendOne(t, smtpAddr, msg)

	out := filepath.Join(dir, "out.eml")
	if r := runCLI(t, bin, dir, "get", id, "-o", out, "-config", cfg); r.code != 0 {
		t.Fatalf("get: %d %s", r.code, r.stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("get returned %q (%v), want %q", got, err, msg)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("get -o wrote mode %v, want 0600", st.Mode().Perm())
	}
	if r := runCLI(t, bin, dir, "get", "nosuchid", "-config", cfg); r.code == 0 {
		t.Error("get of a bad id succeeded")
	}

	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop within 30s of SIGTERM")
	}
}

func TestUsersAuditAndHTTP(t *testing.T) {
	st := newSetup(t)
	bin, dir, cfg, smtpAddr, httpAddr := st.bin, st.dir, st.cfg, st.smtpAddr, st.httpAddr
	r := runCLI(t, bin, dir, "users", "add", "bob", "-mailbox", "Bob@Example.test", "-config", cfg)
	if r.code != 0 {
		t.Fatalf("users add: %d %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	token := lines[len(lines)-1]
	if len(token) < 40 || strings.ContainsAny(token, " \t") {
		t.Fatalf("last line of stdout %q is not a token alone", token)
	}
	users, _ := os.ReadFile(filepath.Join(dir, "users.yaml"))
	if strings.Contains(string(users), token) {
		t.Fatal("the users file contains the token itself")
	}
	if r := runCLI(t, bin, dir, "users", "list", "-config", cfg); !strings.Contains(r.stdout, "bob\treader") {
		t.Errorf("users list: %q", r.stdout)
	}
	d := startDaemon(t, bin, dir, "-config", cfg)
	_ = d

	msg := []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: for bob\r\n\r\nhello bob\r\n")
	id := sendOne(t, smtpAddr, msg)

	get := func(tok, path string) (int, []byte) {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	if code, body := get(token, "/v1/messages/"+id+"/raw"); code != 200 || !bytes.Equal(body, msg) {
		t.Fatalf("raw as bob: %d %q", code, body)
	}
	if code, _ := get("", "/v1/messages/"+id+"/raw"); code != 401 {
		t.Errorf("raw without a token: %d, want 401", code)
	}
	if code, body := get("", "/metrics"); code != 200 || !bytes.Contains(body, []byte(`mailvaultd_messages_total{outcome="archived"} 1`)) {
		t.Errorf("metrics: %d, archived counter missing", code)
	}
	if r := runCLI(t, bin, dir, "get", id, "-o", filepath.Join(dir, "m.eml"), "-config", cfg); r.code != 0 {
		t.Fatalf("get: %s", r.stderr)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	r = runCLI(t, bin, dir, "audit", "verify", auditPath)
	if r.code != 0 || !strings.Contains(r.stdout, "chain intact") {
		t.Fatalf("audit verify: %d %q %q", r.code, r.stdout, r.stderr)
	}
	log, _ := os.ReadFile(auditPath)
	if n := strings.Count(string(log), "\n"); n < 3 {
		t.Errorf("audit log has %d lines, want one per read and denial (>= 3)", n)
	}
	if !strings.Contains(string(log), `"user":"cli:`) {
		t.Error("mailvaultd get left no audit line")
	}
	// Tamper with one line: verify names it.
	tampered := strings.Replace(string(log), `"outcome":"ok"`, `"outcome":"OK"`, 1)
	os.WriteFile(auditPath, []byte(tampered), 0o600)
	r = runCLI(t, bin, dir, "audit", "verify", auditPath)
	if r.code == 0 || !strings.Contains(r.stderr, "line") {
		t.Errorf("audit verify of a tampered log: %d %q", r.code, r.stderr)
	}
}

// TestDevelopmentDefaults runs `serve` with no -config in an empty directory.
func TestDevelopmentDefaults(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	for _, a := range []string{"127.0.0.1:10025", "127.0.0.1:8026"} {
		if l, err := net.Listen("tcp", a); err != nil {
			t.Fatalf("the development defaults need %s free: %v", a, err)
		} else {
			l.Close()
		}
	}
	startDaemon(t, bin, dir)
	st, err := os.Stat(filepath.Join(dir, "mailvaultd-data", "admin.token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v", st, err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "mailvaultd-data", "admin.token"))
	req, _ := http.NewRequest("GET", "http://127.0.0.1:8026/v1/messages", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("list with the admin token: %d", res.StatusCode)
	}
	c, err := smtp.Dial("127.0.0.1:10025")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@example.test", []string{"b@example.test"}, strings.NewReader("Subject: dev\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("store-only delivery: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mailvaultd-data", "keyring.json")); err != nil {
		t.Error(err)
	}
}

// beginData opens a transaction from a@example.test to bob@example.test and
// returns the client (closed at cleanup) and the DATA writer.
func beginData(t *testing.T, addr string) (*smtp.Client, *smtp.DataCommand) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Mail("a@example.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// sendOne delivers msg over SMTP and returns the archive id from the reply.
func sendOne(t *testing.T, addr string, msg []byte) string {
	t.Helper()
	c, w := beginData(t, addr)
	w.Write(msg)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	c.Quit()
	return archiveID(t, resp.StatusText)
}

// TestS3KMSAndLegalHold runs the daemon on S3 (a real MinIO with Object
// Lock) and AWS KMS (the test double), reads a message back with `get`,
// and sets and clears a legal hold with `hold`.
func TestS3KMSAndLegalHold(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	kms := kmstest.Start(t)
	kms.SetEnv(t) // the daemon's AWS SDK finds its credentials in the environment
	kms.CreateAlias("alias/mailvault", kms.CreateKey())
	minio := miniotest.StartWith(t, miniotest.Config{AccessKey: kmstest.AccessKey, SecretKey: kmstest.SecretKey})
	minio.NewBucket(t, "archive", true)
	c := writeConfig(t, dir, func(c *config.Config) {
		c.Keys.Provider = "awskms"
		c.Keys.AWSKMS.KeyID = "alias/mailvault"
		c.Keys.AWSKMS.Region = miniotest.Region
		c.Keys.AWSKMS.Endpoint = kms.URL
		c.Archive.Backend = "s3"
		c.Archive.S3.Bucket = "archive"
		c.Archive.S3.Region = miniotest.Region
		c.Archive.S3.Endpoint = minio.Endpoint
		c.Archive.S3.PathStyle = true
		c.Archive.S3.ObjectLock.Mode = "GOVERNANCE"
		c.Archive.S3.ObjectLock.Days = 1
	})
	cfg, smtpAddr := c.File, c.SMTP.Listen
	if r := runCLI(t, bin, dir, "keys", "init", "-config", cfg); r.code != 0 {
		t.Fatalf("keys init: %s", r.stderr)
	}
	startDaemon(t, bin, dir, "-config", cfg)

	msg := []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: s3 PLAINTEXT-S3-MARKER\r\n\r\nbody\r\n")
	id := sendOne(t, smtpAddr, msg)
	if n := kms.Calls("GenerateDataKey"); n != 1 {
		t.Errorf("GenerateDataKey calls: %d, want 1", n)
	}
	out := filepath.Join(dir, "m.eml")
	if r := runCLI(t, bin, dir, "get", id, "-o", out, "-config", cfg); r.code != 0 {
		t.Fatalf("get: %s", r.stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, msg) {
		t.Fatalf("get returned %q", got)
	}

	ctx := context.Background()
	s3c := minio.Client()
	head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("archive"), Key: aws.String("msg/" + id)})
	if err != nil {
		t.Fatal(err)
	}
	if head.Metadata["mv-wrapped-key"] == "" || head.ObjectLockMode != "GOVERNANCE" {
		t.Errorf("object metadata %v, lock mode %q", head.Metadata, head.ObjectLockMode)
	}
	if r := runCLI(t, bin, dir, "hold", id, "on", "-config", cfg); r.code != 0 {
		t.Fatalf("hold on: %s", r.stderr)
	}
	lh, err := s3c.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: aws.String("archive"), Key: aws.String("msg/" + id)})
	if err != nil || lh.LegalHold.Status != "ON" {
		t.Fatalf("legal hold after `hold on`: %+v %v", lh, err)
	}
	if r := runCLI(t, bin, dir, "hold", id, "off", "-config", cfg); r.code != 0 {
		t.Fatalf("hold off: %s", r.stderr)
	}
	lh, err = s3c.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: aws.String("archive"), Key: aws.String("msg/" + id)})
	if err != nil || lh.LegalHold.Status != "OFF" {
		t.Fatalf("legal hold after `hold off`: %+v %v", lh, err)
	}
}

// TestSIGHUPReloadsUsers adds a user while the daemon runs: the token works
// after SIGHUP, without a restart.
func TestSIGHUPReloadsUsers(t *testing.T) {
	st := newSetup(t)
	bin, dir, cfg, httpAddr := st.bin, st.dir, st.cfg, st.httpAddr
	d := startDaemon(t, bin, dir, "-config", cfg)
	r := runCLI(t, bin, dir, "users", "add", "auditor", "-auditor", "-config", cfg)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	token := lines[len(lines)-1]
	status := func() int {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/v1/messages", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := status(); s != 401 {
		t.Fatalf("before SIGHUP: %d, want 401", s)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "users file reloaded", 10*time.Second)
	if s := status(); s != 200 {
		t.Fatalf("after SIGHUP: %d, want 200", s)
	}
}

// TestKeysRotate: after `keys rotate` and a reload, new messages are wrapped
// under the new master key version and older messages still open.
func TestKeysRotate(t *testing.T) {
	st := newSetup(t)
	bin, dir, cfg, smtpAddr := st.bin, st.dir, st.cfg, st.smtpAddr
	d := startDaemon(t, bin, dir, "-config", cfg)
	old := []byte("Subject: before rotation\r\n\r\nold\r\n")
	oldID := sendOne(t, smtpAddr, old)
	r := runCLI(t, bin, dir, "keys", "rotate", "-config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "version 2") {
		t.Fatalf("keys rotate: %d %q %q", r.code, r.stdout, r.stderr)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "keyring reloaded", 10*time.Second)
	newID := sendOne(t, smtpAddr, []byte("Subject: after rotation\r\n\r\nnew\r\n"))
	for id, want := range map[string]string{oldID: "local:1", newID: "local:2"} {
		out := filepath.Join(dir, id+".eml")
		if r := runCLI(t, bin, dir, "get", id, "-o", out, "-config", cfg); r.code != 0 {
			t.Fatalf("get %s after rotation: %s", id, r.stderr)
		}
		if kid := keyIDOf(t, dir, id); kid != want {
			t.Errorf("message %s wrapped under %q, want %q", id, kid, want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, oldID+".eml")); !bytes.Equal(got, old) {
		t.Error("the message from before the rotation no longer opens byte-exact")
	}
}

// keyIDOf reads the key id recorded in message id's metadata through the
// fs store.
func keyIDOf(t *testing.T, dir, id string) string {
	t.Helper()
	st, err := fsstore.New(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Head(context.Background(), "msg/"+id)
	if err != nil {
		t.Fatal(err)
	}
	return info.Metadata["mv-key-id"]
}

// TestSystemdNotify runs the daemon as systemd would for Type=notify with a
// watchdog: it must send READY=1 once it serves, WATCHDOG=1 pings within the
// interval, and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	st := newSetup(t)
	bin, dir, cfg := st.bin, st.dir, st.cfg
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000") // 0.4 s: pings every 0.2 s
	d := startDaemon(t, bin, dir, "-config", cfg)

	got := map[string]int{}
	read := func(until string) {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for got[until] == 0 {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s (so far %v): %v", until, got, err)
			}
			for _, f := range strings.Split(string(buf[:n]), "\n") {
				got[f]++
			}
		}
	}
	read("READY=1")
	for range 2 { // two pings, each within the deadline
		delete(got, "WATCHDOG=1")
		read("WATCHDOG=1")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	read("STOPPING=1")
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// TestSIGTERMDrains: a transaction in progress when SIGTERM arrives is
// finished and answered 250; new connections are no longer accepted.
func TestSIGTERMDrains(t *testing.T) {
	st := newSetup(t)
	bin, dir, cfg, smtpAddr := st.bin, st.dir, st.cfg, st.smtpAddr
	d := startDaemon(t, bin, dir, "-config", cfg)
	_, w := beginData(t, smtpAddr)
	w.Write([]byte("Subject: in flight\r\n\r\nfirst half\r\n"))
	d.cmd.Process.Signal(syscall.SIGTERM)
	// The daemon stops listening before it waits for us.
	d.waitLog(t, "shutting down", 10*time.Second)
	// The listener closes right after that line; within a bound, new
	// connections must be refused.
	for stop := time.Now().Add(5 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", smtpAddr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(stop) {
			t.Fatal("new connections still accepted 5s after SIGTERM")
		}
	}
	w.Write([]byte("second half\r\n"))
	resp, err := w.CloseWithResponse()
	if err != nil || !strings.Contains(resp.StatusText, "archived as") {
		t.Fatalf("the transaction in flight at SIGTERM: %v %v, want 250 archived", resp, err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after draining: %v", err)
	}
}
