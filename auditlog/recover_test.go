package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailvault/mailvaultd/access"
)

// The test binary doubles as a second writer process: with these variables
// set it appends to the log and exits instead of running the tests.
const (
	envWriterPath = "AUDITLOG_TEST_WRITER_PATH"
	envWriterN    = "AUDITLOG_TEST_WRITER_N"
	envWriterName = "AUDITLOG_TEST_WRITER_NAME"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envWriterPath); path != "" {
		n, _ := strconv.Atoi(os.Getenv(envWriterN))
		if err := appendRecords(path, os.Getenv(envWriterName), n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// appendRecords opens the log at path and records n events by user.
func appendRecords(path, user string, n int) error {
	a, err := Open(path)
	if err != nil {
		return err
	}
	defer a.Close()
	for i := range n {
		if err := a.Record(access.Event{User: user, Action: access.ActionRaw, Bytes: int64(i), Remote: "local", Outcome: access.OutcomeOK}); err != nil {
			return err
		}
	}
	return nil
}

func appendBytes(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")
}

// TestTwoWritersKeepOneChain: the daemon and `mailvaultd get` each hold the
// log open and append in turn; the chain stays one chain.
func TestTwoWritersKeepOneChain(t *testing.T) {
	t.Run("two opened logs in one process", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		a, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, l := range []*Log{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					if err := l.Record(access.Event{User: "u", Action: access.ActionRaw, Bytes: int64(i), Outcome: access.OutcomeOK}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		a.Close()
		b.Close()
		if n, err := verifyFile(t, path); err != nil || n != 400 {
			t.Fatalf("verify = %d, %v; want 400, nil", n, err)
		}
	})
	t.Run("two processes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		const each = 300
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for _, name := range []string{"daemon", "cli"} {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), envWriterPath+"="+path, envWriterN+"="+strconv.Itoa(each), envWriterName+"="+name)
			out := &bytes.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, outs = append(cmds, cmd), append(outs, out)
		}
		// And this process as a third writer meanwhile.
		if err := appendRecords(path, "test", each); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("writer %d: %v\n%s", i, err, outs[i])
			}
		}
		n, err := verifyFile(t, path)
		if err != nil || n != 3*each {
			t.Fatalf("verify = %d, %v; want %d, nil", n, err, 3*each)
		}
		// The writers did interleave: each line's user differs from the
		// one before it somewhere in the middle of the log.
		users := map[string]int{}
		switches := 0
		last := ""
		for _, s := range readLines(t, path) {
			if s == "" {
				continue
			}
			l, err := parseLine([]byte(strings.TrimSuffix(s, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			users[l.User]++
			if l.User != last {
				switches++
			}
			last = l.User
		}
		if users["daemon"] != each || users["cli"] != each || users["test"] != each {
			t.Errorf("records per writer %v", users)
		}
		t.Logf("%d changes of writer in %d lines", switches-1, n)
	})
}

// TestTornTailIsRecovered: a line cut short is kept, the chain continues
// after a record naming it, and Verify accepts the result.
func TestTornTailIsRecovered(t *testing.T) {
	full := func(t *testing.T, path string) string {
		writeAuditLines(t, path, 3)
		lines := readLines(t, path)
		return lines[1] // a whole line, to cut
	}
	for _, c := range []struct {
		name string
		torn func(whole string) string // what the crash left after three lines
		// wantTorn is the torn region the recovery record names, "" for none.
		wantTorn func(torn string) string
	}{
		{"cut mid-line", func(w string) string { return w[:40] }, func(s string) string { return s + "\n" }},
		{"cut after one byte", func(w string) string { return w[:1] }, func(s string) string { return s + "\n" }},
		{"cut just before the newline", func(w string) string { return w[:len(w)-2] }, func(s string) string { return s + "\n" }},
		{"torn again during the recovery", func(w string) string {
			return w[:30] + "\n" + `{"seq":4,"time":"2026-`
		}, func(s string) string { return s + "\n" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			whole := full(t, path)
			tornBytes := c.torn(whole)
			appendBytes(t, path, tornBytes)
			a, err := Open(path)
			if err != nil {
				t.Fatalf("Open after a torn write: %v", err)
			}
			if err := a.Record(access.Event{User: "after", Action: access.ActionRaw, Outcome: access.OutcomeOK}); err != nil {
				t.Fatal(err)
			}
			a.Close()
			b, _ := os.ReadFile(path)
			if !bytes.Contains(b, []byte(tornBytes)) {
				t.Fatal("the torn bytes are gone")
			}
			n, err := verifyFile(t, path)
			lines := bytes.Count(b, []byte("\n"))
			if err != nil || n != lines {
				t.Fatalf("verify = %d, %v; want %d lines, nil\n%s", n, err, lines, b)
			}
			region := c.wantTorn(tornBytes)
			rec := lastRecovery(t, path)
			sum := sha256.Sum256([]byte(region))
			if rec.Torn.Bytes != len(region) || rec.Torn.SHA256 != hex.EncodeToString(sum[:]) || rec.Seq != 4 || rec.Action != recoveryAction {
				t.Errorf("recovery record %+v %+v, want %d bytes, sha256 %x, seq 4", rec, rec.Torn, len(region), sum)
			}
		})
	}
}

func lastRecovery(t *testing.T, path string) line {
	t.Helper()
	var rec line
	for _, s := range readLines(t, path) {
		if l, err := parseLine([]byte(strings.TrimSuffix(s, "\n"))); err == nil && l.Torn != nil {
			rec = l
		}
	}
	if rec.Torn == nil {
		t.Fatal("no recovery record")
	}
	return rec
}

// TestUnterminatedRecordIsCompleted: a write cut just before its newline
// left a whole record; Open ends it and writes no recovery record.
func TestUnterminatedRecordIsCompleted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAuditLines(t, path, 3)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-1], 0o600)
	writeAuditLines(t, path, 1)
	if n, err := verifyFile(t, path); err != nil || n != 4 {
		t.Fatalf("verify = %d, %v; want 4, nil", n, err)
	}
	if bytes.Contains(mustRead(t, path), []byte(`"torn"`)) {
		t.Error("a recovery record for a whole record")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecoveryDoesNotHideTampering: only the pattern a torn write leaves is
// accepted, by Open and by Verify.
func TestRecoveryDoesNotHideTampering(t *testing.T) {
	// A recovered log: 3 records, a torn line, the recovery record, 2 more.
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeAuditLines(t, path, 3)
	appendBytes(t, path, `{"seq":4,"time":"2026-01-02T03:04:05Z","user":"ali`)
	writeAuditLines(t, path, 2)
	lines := readLines(t, path)
	lines = lines[:len(lines)-1]
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	if n, err := Verify(strings.NewReader(strings.Join(lines, ""))); err != nil || n != 7 {
		t.Fatalf("the recovered log: verify = %d, %v", n, err)
	}
	for _, c := range []struct {
		name     string
		edit     func([]string) []string
		wantLine int
	}{
		{"torn line edited", func(l []string) []string { l[3] = strings.Replace(l[3], "ali", "bob", 1); return l }, 4},
		{"torn line removed", func(l []string) []string { return append(l[:3:3], l[4:]...) }, 4},
		{"recovery record removed", func(l []string) []string { return append(l[:4:4], l[5:]...) }, 4},
		{"torn line and recovery record removed", func(l []string) []string { return append(l[:3:3], l[5:]...) }, 4},
		{"a record before the torn line edited", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"user":"alice"`, `"user":"alicf"`, 1)
			return l
		}, 3},
		{"a line after the recovery record edited", func(l []string) []string {
			l[5] = strings.Replace(l[5], `"user":"alice"`, `"user":"alicf"`, 1)
			return l
		}, 6},
		{"a second torn line slipped in", func(l []string) []string {
			return append(l[:4:4], append([]string{"{\"seq\":5\n"}, l[4:]...)...)
		}, 4},
		{"an altered record passed off as torn", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"bytes":20`, `"bytes":99`, 1)
			return append(l[:3:3], l[5:]...)
		}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := c.edit(append([]string(nil), lines...))
			n, err := Verify(strings.NewReader(strings.Join(l, "")))
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Line != c.wantLine {
				t.Fatalf("verify = %d, %v; want broken at line %d", n, err, c.wantLine)
			}
		})
	}

	// Open refuses a complete last line that is not a record (an edit, not
	// a torn write), and a tail of garbage larger than any torn write.
	for name, tail := range map[string]string{
		"altered last line":      strings.Replace(lines[6], `"user":"alice"`, `"user":"alicf"`, 1),
		"garbage after the last": strings.Repeat("x", maxTornBytes+1),
		"a blank last line":      "\n",
	} {
		t.Run("Open/"+name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.jsonl")
			body := strings.Join(lines[:6], "")
			if name == "altered last line" {
				body += tail
			} else {
				body += lines[6] + tail
			}
			os.WriteFile(p, []byte(body), 0o600)
			if _, err := Open(p); err == nil {
				t.Fatal("Open accepted it")
			}
			if got := string(mustRead(t, p)); got != body {
				t.Error("a refused log was changed")
			}
		})
	}
}
