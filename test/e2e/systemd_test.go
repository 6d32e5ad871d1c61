package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// maxExposure is the highest `systemd-analyze security` exposure score the
// unit may have (below 2.0 is systemd's "OK").
const maxExposure = 2.0

// installedBinary is the ExecStart path the shipped unit names.
const installedBinary = "/usr/local/bin/mailvaultd"

// unitForAnalysis copies systemd/mailvaultd.service into a temporary
// directory with ExecStart's binary replaced by an executable stand-in there:
// verify checks that the command exists and is executable (it does not run
// it), and the real binary is only at installedBinary after an install.
func unitForAnalysis(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	stand := filepath.Join(dir, "mailvaultd")
	if err := os.WriteFile(stand, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := mustReplace(t, "systemd/mailvaultd.service", repoFile(t, "systemd/mailvaultd.service"), installedBinary+" ", stand+" ")
	path := filepath.Join(dir, "mailvaultd.service")
	writeFile(t, path, unit)
	return path
}

// TestSystemdUnitVerify runs `systemd-analyze verify` on the unit and wants
// it silent: any warning (unknown key, bad value, missing command) fails.
func TestSystemdUnitVerify(t *testing.T) {
	requireDebian(t, systemdTools)
	unit := unitForAnalysis(t)
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}

	// And verify does catch what it should, so its silence means something.
	broken := filepath.Join(t.TempDir(), "mailvaultd.service")
	writeFile(t, broken, strings.Replace(readFileString(t, unit), "ProtectSystem=strict", "ProtectSytem=strict", 1))
	if out, _ := exec.Command("systemd-analyze", "verify", broken).CombinedOutput(); !strings.Contains(string(out), "ProtectSytem") {
		t.Errorf("systemd-analyze verify did not flag a misspelt key; its silence above proves nothing:\n%s", out)
	}
}

// TestSystemdUnitSecurity runs `systemd-analyze security --offline=true` and
// wants the overall exposure below maxExposure.
func TestSystemdUnitSecurity(t *testing.T) {
	requireDebian(t, systemdTools)
	unit := unitForAnalysis(t)
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", unit, err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for mailvaultd\.service: ([0-9.]+) (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security: exposure %.1f %s", score, m[2])
	if score >= maxExposure {
		t.Errorf("exposure %.1f, want below %.1f:\n%s", score, maxExposure, out)
	}
}

// TestSystemdUnitContract checks the lines the daemon's behaviour depends on.
func TestSystemdUnitContract(t *testing.T) {
	unit := repoFile(t, "systemd/mailvaultd.service")
	for _, line := range []string{
		"Type=notify",
		"NotifyAccess=main",
		"ExecStart=" + installedBinary + " serve -config /etc/mailvaultd/mailvaultd.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"WatchdogSec=30s",
		"RestartPreventExitStatus=78", // EX_CONFIG: cmd/mailvaultd's exitConfig
		"User=mailvaultd",
		"ProtectSystem=strict",
		"ReadWritePaths=/var/lib/mailvaultd /var/log/mailvaultd",
		"CapabilityBoundingSet=",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		"SystemCallFilter=@system-service",
		"MemoryDenyWriteExecute=yes",
		"NoNewPrivileges=yes",
		"PrivateTmp=yes",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).MatchString(unit) {
			t.Errorf("systemd/mailvaultd.service lacks the line %q", line)
		}
	}
	if stop := unitDuration(t, unit, "TimeoutStopSec"); stop <= 30*time.Second {
		t.Errorf("TimeoutStopSec=%v does not leave room for the daemon's 30s drain", stop)
	}
}

// unitDuration reads a "KEY=Ns" line of a unit.
func unitDuration(t *testing.T, unit, key string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + key + `=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatalf("unit has no %s=", key)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("%s=%s: %v", key, m[1], err)
	}
	return d
}

// TestSystemdSysusersTmpfiles applies the sysusers.d and tmpfiles.d snippets
// to an empty root (--root) and checks the user, the directories, their
// owners and modes.
func TestSystemdSysusersTmpfiles(t *testing.T) {
	requireRoot(t) // tmpfiles chowns
	requireDebian(t, systemdTools)
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sysusers := filepath.Join(repoRoot(t), "systemd", "mailvaultd.sysusers")
	tmpfiles := filepath.Join(repoRoot(t), "systemd", "mailvaultd.tmpfiles")
	if out, err := exec.Command("systemd-sysusers", "--root="+root, sysusers).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd := readFileString(t, filepath.Join(root, "etc", "passwd"))
	m := regexp.MustCompile(`(?m)^mailvaultd:x:(\d+):(\d+):[^:]*:/var/lib/mailvaultd:/usr/sbin/nologin$`).FindStringSubmatch(passwd)
	if m == nil {
		t.Fatalf("no mailvaultd system user in /etc/passwd:\n%s", passwd)
	}
	uid, _ := strconv.Atoi(m[1])
	gid, _ := strconv.Atoi(m[2])
	if uid == 0 || uid >= 1000 {
		t.Errorf("mailvaultd has uid %d, want a system uid (1-999)", uid)
	}
	if out, err := exec.Command("systemd-tmpfiles", "--root="+root, "--create", tmpfiles).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles --create: %v\n%s", err, out)
	}
	for _, want := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"/var/lib/mailvaultd", 0o700, uid, gid},
		{"/var/log/mailvaultd", 0o750, uid, gid},
		{"/etc/mailvaultd", 0o750, 0, gid},
	} {
		fi, err := os.Stat(filepath.Join(root, want.path))
		if err != nil {
			t.Errorf("%s: %v", want.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != want.mode || int(st.Uid) != want.uid || int(st.Gid) != want.gid {
			t.Errorf("%s: %v %d:%d, want directory %v %d:%d", want.path, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
		}
	}
}

func readFileString(t testing.TB, path string) string {
	t.Helper()
	return string(readFile(t, path))
}
