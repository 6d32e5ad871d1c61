package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// stopDaemon stops d with SIGTERM and waits for it to exit cleanly.
func stopDaemon(t *testing.T, d *runningDaemon) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
}

// bigMessage spans several sealed chunks (64 KiB each), so a read that
// fails at its last chunk has released the first ones already.
func bigMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n")
	for b.Len() < 200<<10 {
		b.WriteString("the quick brown fox jumps over the lazy dog 0123456789\r\n")
	}
	return b.Bytes()
}

// auditLines is the number of lines in the audit log at path.
func auditLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// tamperLastChunk flips the last byte of message id's sealed object (the
// tag of its last chunk) through the fs store, keeping its metadata.
func tamperLastChunk(t *testing.T, archiveDir, id string) {
	t.Helper()
	ctx := context.Background()
	st, err := fsstore.New(archiveDir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Head(ctx, "msg/"+id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(ctx, "msg/"+id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	w, err := st.Create(ctx, "msg/"+id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Write(data)
	if err := w.Commit(ctx, info.Metadata, false); err != nil {
		t.Fatal(err)
	}
}

// TestGetOutputFile: -o creates FILE new with mode 0600 and never follows a
// symbolic link; it refuses an existing FILE without -f; -f replaces FILE
// (a link there included, its target untouched) with mode 0600; a read that
// fails leaves no file, partial or temporary, and an existing FILE as it
// was. A refused -o decrypts nothing and records nothing.
func TestGetOutputFile(t *testing.T) {
	st := newSetup(t)
	d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	msg := bigMessage()
	id := sendOne(t, st.smtpAddr, msg)
	broken := sendOne(t, st.smtpAddr, append([]byte("Subject: to be damaged\r\n"), msg...))
	stopDaemon(t, d)
	tamperLastChunk(t, filepath.Join(st.dir, "archive"), broken)
	auditPath := filepath.Join(st.dir, "audit.jsonl")

	const old = "an older file\n"
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, out, target string) // target: where a link points
		id      string
		force   bool
		ok      bool
		want    string // FILE's content afterwards; "" = FILE must not exist
		errText string
	}{
		{name: "new file", id: id, ok: true, want: string(msg)},
		{name: "existing file without -f", id: id, errText: "pass -f", want: old,
			prepare: func(t *testing.T, out, _ string) { os.WriteFile(out, []byte(old), 0o644) }},
		{name: "existing 0644 file with -f", id: id, force: true, ok: true, want: string(msg),
			prepare: func(t *testing.T, out, _ string) { os.WriteFile(out, []byte(old), 0o644) }},
		{name: "link without -f", id: id, errText: "pass -f",
			prepare: func(t *testing.T, out, target string) {
				os.WriteFile(target, []byte(old), 0o644)
				os.Symlink(target, out)
			}},
		{name: "dangling link without -f", id: id, errText: "pass -f",
			prepare: func(t *testing.T, out, target string) { os.Symlink(target, out) }},
		{name: "link with -f", id: id, force: true, ok: true, want: string(msg),
			prepare: func(t *testing.T, out, target string) {
				os.WriteFile(target, []byte(old), 0o644)
				os.Symlink(target, out)
			}},
		{name: "read fails midway", id: broken, errText: broken},
		{name: "read fails midway with -f", id: broken, force: true, errText: broken, want: old,
			prepare: func(t *testing.T, out, _ string) { os.WriteFile(out, []byte(old), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, target := filepath.Join(dir, "out.eml"), filepath.Join(dir, "target")
			if tc.prepare != nil {
				tc.prepare(t, out, target)
			}
			targetBefore, _ := os.ReadFile(target)
			before := auditLines(t, auditPath)
			args := []string{"get", tc.id, "-o", out, "-config", st.cfg}
			if tc.force {
				args = append(args, "-f")
			}
			r := runCLI(t, st.bin, st.dir, args...)
			if (r.code == 0) != tc.ok || !strings.Contains(r.stderr, tc.errText) {
				t.Fatalf("exit %d, stderr %q; want success %v, stderr naming %q", r.code, r.stderr, tc.ok, tc.errText)
			}
			fi, err := os.Lstat(out)
			switch {
			case tc.want == "" && tc.prepare == nil:
				if err == nil {
					t.Errorf("%s exists after a failed get", out)
				}
			case tc.want != "":
				got, rerr := os.ReadFile(out)
				if err != nil || rerr != nil || !fi.Mode().IsRegular() || string(got) != tc.want {
					t.Fatalf("FILE afterwards: %v %v %v, %d bytes; want a regular file of %d bytes", fi, err, rerr, len(got), len(tc.want))
				}
				if tc.ok && fi.Mode().Perm() != 0o600 {
					t.Errorf("FILE mode %v, want 0600", fi.Mode().Perm())
				}
			}
			if targetAfter, _ := os.ReadFile(target); !bytes.Equal(targetAfter, targetBefore) {
				t.Error("the link's target was changed")
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != "out.eml" && e.Name() != "target" {
					t.Errorf("left behind in FILE's directory: %s", e.Name())
				}
			}
			if refused := strings.Contains(tc.errText, "-f"); refused && auditLines(t, auditPath) != before {
				t.Error("a refused -o left an audit record of a read that never happened")
			} else if !refused && auditLines(t, auditPath) <= before {
				t.Error("a read left no audit record")
			}
		})
	}
}

// TestGetAuditsFirst: with an audit log that cannot take a record, get
// decrypts nothing: it writes nothing to standard output, leaves no -o file,
// and says why.
func TestGetAuditsFirst(t *testing.T) {
	st := newSetup(t)
	d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	msg := []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: audited\r\n\r\nPLAINTEXT-MARKER\r\n")
	id := sendOne(t, st.smtpAddr, msg)
	stopDaemon(t, d)

	for _, tc := range []struct {
		name  string
		audit func(t *testing.T, path string) // makes path unusable
	}{
		// /dev/full opens, locks and reads as empty; every write fails with
		// ENOSPC, as on a full disk.
		{"disk full", func(t *testing.T, path string) { os.Symlink("/dev/full", path) }},
		{"not a file", func(t *testing.T, path string) { os.Mkdir(path, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
			tc.audit(t, auditPath)
			cfg := filepath.Join(t.TempDir(), "mailvaultd.yaml")
			c, err := config.Load(st.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.Retrieval.AuditLog = auditPath
			testkit.WriteConfig(t, cfg, c)
			for _, args := range [][]string{
				{"get", id, "-config", cfg},
				{"get", id, "-o", filepath.Join(st.dir, "m.eml"), "-config", cfg},
			} {
				r := runCLI(t, st.bin, st.dir, args...)
				if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "nothing was decrypted") {
					t.Errorf("%v: exit %d, stdout %d bytes, stderr %q; want a failure saying nothing was decrypted", args, r.code, len(r.stdout), r.stderr)
				}
				if _, err := os.Stat(filepath.Join(st.dir, "m.eml")); err == nil {
					t.Errorf("%v left the -o file", args)
					os.Remove(filepath.Join(st.dir, "m.eml"))
				}
			}
		})
	}
}

// TestGetBesideDaemonKeepsOneChain runs several `get`s while the daemon
// serves reads of its own: both write the one audit log, and the chain
// verifies.
func TestGetBesideDaemonKeepsOneChain(t *testing.T) {
	st := newSetup(t)
	r := runCLI(t, st.bin, st.dir, "users", "add", "carol", "-auditor", "-config", st.cfg)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	token := lines[len(lines)-1]
	startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	msg := []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: two writers\r\n\r\nbody\r\n")
	id := sendOne(t, st.smtpAddr, msg)

	const gets, reads = 6, 12
	var wg sync.WaitGroup
	errs := make(chan string, gets+reads)
	for range gets {
		wg.Go(func() {
			if r := runCLI(t, st.bin, st.dir, "get", id, "-config", st.cfg); r.code != 0 || r.stdout != string(msg) {
				errs <- "get: " + r.stderr
			}
		})
	}
	for range reads {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "http://"+st.httpAddr+"/v1/messages/"+id+"/raw", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				errs <- "http: " + res.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	auditPath := filepath.Join(st.dir, "audit.jsonl")
	r = runCLI(t, st.bin, st.dir, "audit", "verify", auditPath)
	if r.code != 0 || !strings.Contains(r.stdout, "chain intact") {
		t.Fatalf("audit verify: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if n := auditLines(t, auditPath); n < gets+reads {
		t.Errorf("audit log has %d lines, want at least %d", n, gets+reads)
	}
}
