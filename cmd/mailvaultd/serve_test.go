package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// runBounded runs the binary like runCLI, but kills it after limit: for
// commands that must exit by themselves and, broken, would serve forever.
func runBounded(t *testing.T, bin, dir string, limit time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v still running after %v; stderr:\n%s", args, limit, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code, out.String(), errb.String()}
}

// TestListenAddressInUse: a listen address another process holds is not a
// configuration error (78, which systemd does not restart into) but exit 75,
// naming the key, the address and the likely holder.
func TestListenAddressInUse(t *testing.T) {
	bin := buildBinary(t)
	for _, key := range []string{"smtp.listen", "retrieval.listen", "retrieval.metrics_listen"} {
		t.Run(key, func(t *testing.T) {
			dir := t.TempDir()
			c := writeConfig(t, dir, func(c *config.Config) { c.Retrieval.MetricsListen = testkit.FreeAddr(t) })
			addr := map[string]string{"smtp.listen": c.SMTP.Listen, "retrieval.listen": c.Retrieval.Listen,
				"retrieval.metrics_listen": c.Retrieval.MetricsListen}[key]
			if r := runCLI(t, bin, dir, "keys", "init", "-config", c.File); r.code != 0 {
				t.Fatal(r.stderr)
			}
			held, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			r := runBounded(t, bin, dir, time.Minute, "serve", "-config", c.File)
			if r.code != exitTempFail {
				t.Errorf("exit %d, want %d (EX_TEMPFAIL); stderr %q", r.code, exitTempFail, r.stderr)
			}
			for _, want := range []string{key, addr, "in use", "another process (perhaps another mailvaultd)"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q does not say %q", r.stderr, want)
				}
			}
			if strings.Contains(r.stderr, "configuration error") {
				t.Errorf("stderr calls it a configuration error: %q", r.stderr)
			}
		})
	}
}

// TestMetricsListen: with retrieval.metrics_listen, /metrics is served
// there (no token), and no longer beside the API.
func TestMetricsListen(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	c := writeConfig(t, dir, func(c *config.Config) { c.Retrieval.MetricsListen = testkit.FreeAddr(t) })
	if r := runCLI(t, bin, dir, "keys", "init", "-config", c.File); r.code != 0 {
		t.Fatal(r.stderr)
	}
	startDaemon(t, bin, dir, "-config", c.File)
	get := func(addr, path string) (int, string) {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(c.Retrieval.MetricsListen, "/metrics"); code != 200 || !strings.Contains(body, "mailvaultd_smtp_sessions_in_flight") {
		t.Errorf("metrics_listen /metrics: %d, %d bytes without mailvaultd's metrics", code, len(body))
	}
	if code, body := get(c.Retrieval.Listen, "/metrics"); code == 200 && strings.Contains(body, "go_goroutines") {
		t.Error("/metrics is still served on retrieval.listen")
	}
	if code, _ := get(c.Retrieval.Listen, "/healthz"); code != 200 {
		t.Errorf("/healthz on retrieval.listen: %d", code)
	}
}

// openFDs is the number of open file descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestIdleHTTPCannotStarveSMTP lowers the daemon's open-file limit to what
// it holds plus retrieval.max_connections plus a little, parks more idle
// keep-alive HTTP connections than that on it, and then delivers a message
// over SMTP: the HTTP cap leaves SMTP its descriptors.
func TestIdleHTTPCannotStarveSMTP(t *testing.T) {
	const maxConns = 16
	bin := buildBinary(t)
	dir := t.TempDir()
	c := writeConfig(t, dir, func(c *config.Config) { c.Retrieval.MaxConnections = maxConns })
	if r := runCLI(t, bin, dir, "keys", "init", "-config", c.File); r.code != 0 {
		t.Fatal(r.stderr)
	}
	d := startDaemon(t, bin, dir, "-config", c.File)
	pid := d.cmd.Process.Pid
	limit := openFDs(t, pid) + maxConns + 10
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}

	// Twice the limit of idle keep-alive connections, each with one request
	// sent; wait until the daemon has answered maxConns of them (those it
	// accepted), so it has taken what it will take before SMTP is tried.
	answered := make(chan struct{}, 2*limit)
	for range 2 * limit {
		conn, err := net.Dial("tcp", c.Retrieval.Listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: mailvault.test\r\n\r\n")
		go func() {
			if res, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				io.Copy(io.Discard, res.Body) // and keep the connection open, idle
				answered <- struct{}{}
			}
		}()
	}
	for range maxConns {
		select {
		case <-answered:
		case <-time.After(30 * time.Second):
			t.Fatal("the daemon answered fewer than retrieval.max_connections idle connections")
		}
	}

	conn, err := net.DialTimeout("tcp", c.SMTP.Listen, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second)) // no greeting: SMTP was starved
	sc := smtp.NewClient(conn)
	defer sc.Close()
	if err := sc.SendMail("a@example.test", []string{"b@example.test"}, strings.NewReader("Subject: beside idle http\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("SMTP beside %d idle HTTP connections with %d descriptors: %v", 2*limit, limit, err)
	}
	if d.cmd.ProcessState != nil {
		t.Fatal("the daemon exited")
	}
}

// TestAuditLogUnusable: when the audit log cannot take a record (a full
// disk: the log is /dev/full through a link; or it cannot be opened at all:
// a directory at its path), HTTP reads answer 503 and decrypt nothing, while
// SMTP keeps archiving and the daemon keeps running.
func TestAuditLogUnusable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		audit func(path string) error
	}{
		{"disk full", func(path string) error { return os.Symlink("/dev/full", path) }},
		{"not a file", func(path string) error { return os.Mkdir(path, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newSetup(t)
			r := runCLI(t, st.bin, st.dir, "users", "add", "carol", "-auditor", "-config", st.cfg)
			if r.code != 0 {
				t.Fatal(r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			token := lines[len(lines)-1]
			if err := tc.audit(filepath.Join(st.dir, "audit.jsonl")); err != nil {
				t.Fatal(err)
			}
			d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
			id := sendOne(t, st.smtpAddr, []byte("Subject: first\r\n\r\nPLAINTEXT-MARKER\r\n"))
			// A denial first: its record is the write that fails on the
			// full disk. (retrieval records a read after serving it, so a
			// read as the first failing write would still be served.)
			if res, err := http.Get("http://" + st.httpAddr + "/v1/messages"); err != nil {
				t.Fatal(err)
			} else if res.Body.Close(); res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("without a token: %d", res.StatusCode)
			}
			for _, path := range []string{"/v1/messages/" + id + "/raw", "/v1/messages"} {
				req, _ := http.NewRequest("GET", "http://"+st.httpAddr+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusServiceUnavailable || bytes.Contains(body, []byte("PLAINTEXT-MARKER")) {
					t.Errorf("GET %s: %d %q; want 503 and nothing decrypted", path, res.StatusCode, body)
				}
			}
			sendOne(t, st.smtpAddr, []byte("Subject: second\r\n\r\nstill archived\r\n"))
			if d.cmd.ProcessState != nil {
				t.Fatal("the daemon exited")
			}
			stopDaemon(t, d)
		})
	}
}

// TestNoKeyringBesideMessages: where the archive already holds messages, a
// missing keyring is never created anew, neither by `keys init` nor by the
// development defaults; the error says where everything was looked for and
// what to do. Where it holds none, both still create one.
func TestNoKeyringBesideMessages(t *testing.T) {
	t.Run("config file", func(t *testing.T) {
		st := newSetup(t)
		d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
		sendOne(t, st.smtpAddr, []byte("Subject: sealed under the first keyring\r\n\r\nx\r\n"))
		stopDaemon(t, d)
		keyring := filepath.Join(st.dir, "keyring.json")
		if err := os.Rename(keyring, keyring+".lost"); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, st.bin, st.dir, "keys", "init", "-config", st.cfg)
		for _, want := range []string{"refusing to create keyring " + keyring, filepath.Join(st.dir, "archive"),
			"already holds messages", "Restore", "-config"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("keys init: stderr %q does not say %q", r.stderr, want)
			}
		}
		if _, err := os.Stat(keyring); r.code == 0 || err == nil {
			t.Fatalf("keys init beside an archive with messages: exit %d, keyring created: %v", r.code, err == nil)
		}
	})
	t.Run("development defaults", func(t *testing.T) {
		bin := buildBinary(t)
		dir := t.TempDir()
		dataDir := filepath.Join(dir, config.DevDataDir)
		st, err := fsstore.New(filepath.Join(dataDir, "archive"))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		w, err := st.Create(ctx, archive.MessagePrefix+archive.NewID(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("sealed stand-in"))
		if err := w.Commit(ctx, map[string]string{"mv-version": "1"}, false); err != nil {
			t.Fatal(err)
		}
		keyring := filepath.Join(dataDir, "keyring.json")
		for _, args := range [][]string{{"serve"}, {"keys", "init"}} {
			r := runBounded(t, bin, dir, time.Minute, args...)
			for _, want := range []string{"refusing to create keyring " + keyring, filepath.Join(dataDir, "archive"),
				"already holds messages", "development defaults keep everything in " + dataDir, "Restore"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("%v: stderr %q does not say %q", args, r.stderr, want)
				}
			}
			if _, err := os.Stat(keyring); r.code == 0 || err == nil {
				t.Fatalf("%v beside an archive with messages: exit %d, keyring created: %v", args, r.code, err == nil)
			}
		}
		r := runBounded(t, bin, dir, time.Minute, "serve")
		if !strings.Contains(r.stderr, "data_dir="+dataDir) {
			t.Errorf("serve's log does not say where the data directory was looked for: %q", r.stderr)
		}

		empty := t.TempDir()
		if r := runCLI(t, bin, empty, "keys", "init"); r.code != 0 {
			t.Fatalf("keys init with the development defaults in an empty directory: %d %s", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(empty, config.DevDataDir, "keyring.json")); err != nil {
			t.Fatal(err)
		}
	})
}
