package auditlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
)

func writeAuditLines(t *testing.T, path string, n int) {
	t.Helper()
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := range n {
		part := i
		if err := a.Record(access.Event{User: "alice", Role: access.RoleReader, Action: access.ActionPart, MessageID: "abc", Part: &part, Bytes: int64(i * 10), Remote: "127.0.0.1:1", Outcome: access.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
}

func verifyFile(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Verify(f)
}

func TestAuditLogChainAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "audit.jsonl")
	writeAuditLines(t, path, 3)
	writeAuditLines(t, path, 2) // a restart continues the chain

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(filepath.Dir(path))
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("audit dir mode %v, want 0700", dst.Mode().Perm())
	}
	n, err := verifyFile(t, path)
	if err != nil || n != 5 {
		t.Fatalf("verify = %d, %v; want 5, nil", n, err)
	}
	b, _ := os.ReadFile(path)
	first := strings.SplitN(string(b), "\n", 2)[0]
	for _, want := range []string{`"seq":1,`, `"time":"`, `"user":"alice"`, `"role":"reader"`, `"action":"part"`, `"message_id":"abc"`, `"part":0`, `"bytes":0`, `"remote":"127.0.0.1:1"`, `"outcome":"ok"`, `"prev":"` + genesisHash + `"`, `,"hash":"`} {
		if !strings.Contains(first, want) {
			t.Errorf("first line %s lacks %s", first, want)
		}
	}
}

func TestAuditLogTamperDetected(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "audit.jsonl")
	writeAuditLines(t, orig, 6)
	b, _ := os.ReadFile(orig)
	lines := strings.SplitAfter(string(b), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline

	cases := []struct {
		name     string
		edit     func([]string) []string
		wantLine int
	}{
		{"edit line 3 bytes", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"bytes":20`, `"bytes":99`, 1)
			return l
		}, 3},
		{"edit line 3 and fix its own hash", func(l []string) []string {
			al, err := parseLine([]byte(strings.TrimSuffix(l[2], "\n")))
			if err != nil {
				t.Fatal(err)
			}
			al.User = "mallory"
			nb, err := marshalLine(al)
			if err != nil {
				t.Fatal(err)
			}
			l[2] = string(nb) + "\n"
			return l
		}, 4},
		{"edit last line", func(l []string) []string {
			l[5] = strings.Replace(l[5], `"user":"alice"`, `"user":"alicf"`, 1)
			return l
		}, 6},
		{"delete line 4", func(l []string) []string { return append(l[:3:3], l[4:]...) }, 4},
		{"delete first line", func(l []string) []string { return l[1:] }, 1},
		{"swap lines 2 and 3", func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, 2},
		{"torn last line", func(l []string) []string { l[5] = l[5][:20]; return l }, 6},
		{"blank line inserted", func(l []string) []string { return append(l[:2:2], append([]string{"\n"}, l[2:]...)...) }, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := c.edit(append([]string(nil), lines...))
			n, err := Verify(strings.NewReader(strings.Join(l, "")))
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("verify = %d, %v; want an *ChainError", n, err)
			}
			if ce.Line != c.wantLine || n != c.wantLine-1 {
				t.Errorf("verify = %d, %v; want broken line %d", n, err, c.wantLine)
			}
			if !strings.Contains(err.Error(), "line "+strconv.Itoa(c.wantLine)) {
				t.Errorf("error %q does not name line %d", err, c.wantLine)
			}
		})
	}
}

func TestAuditLogConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := a.Record(access.Event{User: "u", Action: access.ActionRaw, Bytes: int64(i), Outcome: access.OutcomeOK, Time: time.Now()}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	a.Close()
	if err := a.Record(access.Event{}); err == nil {
		t.Error("Record after Close succeeded")
	}
	if n, err := verifyFile(t, path); err != nil || n != 160 {
		t.Fatalf("verify = %d, %v; want 160, nil", n, err)
	}
}

func FuzzVerify(f *testing.F) {
	var buf bytes.Buffer
	l1, _ := marshalLine(line{Seq: 1, Event: access.Event{User: "a"}, Prev: genesisHash})
	buf.Write(l1)
	buf.WriteByte('\n')
	f.Add(buf.Bytes())
	f.Add([]byte("{}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Verify(bytes.NewReader(b))
		if err == nil && n != bytes.Count(b, []byte("\n")) {
			t.Fatalf("verified %d lines of %d", n, bytes.Count(b, []byte("\n")))
		}
	})
}
