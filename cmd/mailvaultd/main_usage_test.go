package main

import (
	"strings"
	"testing"
)

// wantUsage is the CLI's synopsis as ARCHITECTURE.md and the README give it:
// the table must keep producing exactly this.
const wantUsage = `usage:
  mailvaultd serve [-config FILE]
  mailvaultd check-config -config FILE
  mailvaultd keys init|rotate [-config FILE]
  mailvaultd users add NAME -mailbox ADDR [-mailbox ADDR...] [-auditor] [-config FILE]
  mailvaultd users list|remove [NAME] [-config FILE]
  mailvaultd get ID [-o FILE [-f]] [-config FILE]
  mailvaultd export QUERY -o FILE.mbox|FILE.zip [-config FILE]
  mailvaultd hold ID on|off [-config FILE]
  mailvaultd search QUERY [-limit N] [-json] [-config FILE]
  mailvaultd catalog rebuild [-workers N] [-force] [-config FILE]
  mailvaultd catalog verify [-repair] [-config FILE]
  mailvaultd audit verify FILE
  mailvaultd version
`

func TestRunDispatchesFromTheTable(t *testing.T) {
	for _, tc := range []struct {
		args               []string
		code               int
		stdout, stderr     string // substrings; "" checks nothing
		stdoutIs, stderrIs *string
	}{
		{args: nil, code: exitUsage, stderrIs: ptr(wantUsage)},
		{args: []string{"help"}, code: exitOK, stdoutIs: ptr(wantUsage)},
		{args: []string{"--help"}, code: exitOK, stdoutIs: ptr(wantUsage)},
		{args: []string{"-h"}, code: exitOK, stdoutIs: ptr(wantUsage)},
		{args: []string{"frobnicate"}, code: exitUsage, stderrIs: ptr("mailvaultd: unknown command \"frobnicate\"\n" + wantUsage)},
		{args: []string{"version"}, code: exitOK, stdout: "mailvaultd "},
		{args: []string{"--version"}, code: exitOK, stdout: "mailvaultd "},
		{args: []string{"keys", "spin"}, code: exitUsage, stderr: "usage: mailvaultd keys init|rotate [-config FILE]"},
		{args: []string{"get"}, code: exitUsage, stderr: "usage: mailvaultd get ID"},
		{args: []string{"hold", "x"}, code: exitUsage, stderr: "usage: mailvaultd hold ID on|off"},
		{args: []string{"search"}, code: exitUsage, stderr: "usage: mailvaultd search QUERY"},
		{args: []string{"catalog", "polish"}, code: exitUsage, stderr: "usage: mailvaultd catalog rebuild"},
		{args: []string{"catalog", "verify", "-force"}, code: exitUsage, stderr: "usage: mailvaultd catalog rebuild"},
		{args: []string{"audit"}, code: exitUsage, stderr: "usage: mailvaultd audit verify FILE"},
		{args: []string{"check-config"}, code: exitUsage, stderr: "-config FILE is required"},
		{args: []string{"serve", "-config", "/nonexistent/mailvaultd.yaml"}, code: exitConfig, stderr: "configuration error"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb strings.Builder
			code := run(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stdout %q, stderr %q; want them to contain %q and %q", out.String(), errb.String(), tc.stdout, tc.stderr)
			}
			if tc.stdoutIs != nil && out.String() != *tc.stdoutIs {
				t.Errorf("stdout %q, want %q", out.String(), *tc.stdoutIs)
			}
			if tc.stderrIs != nil && errb.String() != *tc.stderrIs {
				t.Errorf("stderr %q, want %q", errb.String(), *tc.stderrIs)
			}
		})
	}
}

func ptr(s string) *string { return &s }
