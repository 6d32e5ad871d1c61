package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/export"
)

// TestExportCLI: `export "" -o FILE` writes every archived message, byte for
// byte as received, into a new 0600 mbox or zip (by the extension), with one
// audit record per message; an existing FILE and an unknown extension are
// refused.
func TestExportCLI(t *testing.T) {
	st := newSetup(t)
	d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	raws := [][]byte{
		[]byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: one\r\n\r\nFrom the top\r\n>From quoted\r\n"),
		[]byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: two\r\n\r\nplain\r\n"),
		bigMessage(),
	}
	want := map[string][]byte{}
	for _, raw := range raws {
		want[sendOne(t, st.smtpAddr, raw)] = raw
	}
	stopDaemon(t, d)
	auditPath := filepath.Join(st.dir, "audit.jsonl")
	dir := t.TempDir()

	for _, ext := range []string{"mbox", "zip"} {
		t.Run(ext, func(t *testing.T) {
			out := filepath.Join(dir, "out."+ext)
			before := auditLines(t, auditPath)
			r := runCLI(t, st.bin, st.dir, "export", "", "-o", out, "-config", st.cfg)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if n := auditLines(t, auditPath) - before; n != len(want) {
				t.Errorf("%d audit records, want %d", n, len(want))
			}
			fi, err := os.Stat(out)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, mode %v; want 0600", out, err, fi)
			}
			b, _ := os.ReadFile(out)
			got := map[string]bool{}
			match := func(raw []byte) {
				for id, w := range want {
					if bytes.Equal(raw, w) {
						got[id] = true
						return
					}
				}
				t.Errorf("exported message %.60q is none of those sent", raw)
			}
			if ext == "mbox" {
				if err := export.ReadMbox(bytes.NewReader(b), func(_ string, raw []byte) error { match(raw); return nil }); err != nil {
					t.Fatal(err)
				}
			} else {
				zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range zr.File {
					rc, _ := f.Open()
					raw, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || !bytes.Equal(raw, want[strings.TrimSuffix(f.Name, ".eml")]) {
						t.Errorf("%s differs from what was sent (%v)", f.Name, err)
					}
					got[strings.TrimSuffix(f.Name, ".eml")] = true
				}
			}
			if len(got) != len(want) {
				t.Errorf("export holds %d of the %d messages", len(got), len(want))
			}
			// Run again: FILE exists now.
			r = runCLI(t, st.bin, st.dir, "export", "", "-o", out, "-config", st.cfg)
			if r.code == 0 || !strings.Contains(r.stderr, "exists") {
				t.Errorf("second export: exit %d, %q; want a refusal naming the existing file", r.code, r.stderr)
			}
		})
	}
	r := runCLI(t, st.bin, st.dir, "export", "", "-o", filepath.Join(dir, "out.tar"), "-config", st.cfg)
	if r.code == 0 || !strings.Contains(r.stderr, ".mbox or .zip") {
		t.Errorf("export -o out.tar: exit %d, %q", r.code, r.stderr)
	}
}
