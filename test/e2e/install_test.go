package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailvault/mailvaultd/internal/testkit"
)

// debianFile is a file that a Debian package installs.
type debianFile struct {
	path string
	pkg  string
}

var (
	// mailTools are what the Postfix tests run.
	mailTools = []debianFile{
		{"/usr/sbin/postfix", "postfix"},
		{"/usr/sbin/postqueue", "postfix"},
		{"/usr/sbin/postconf", "postfix"},
		{"/usr/sbin/smtp-source", "postfix"},
		{"/usr/lib/postfix/sbin/virtual", "postfix"},
		{"/usr/bin/swaks", "swaks"},
		{"/usr/bin/gpg", "gnupg"},
	}
	// systemdTools are what the unit checks run.
	systemdTools = []debianFile{
		{"/usr/bin/systemd-analyze", "systemd"},
		{"/usr/bin/systemd-sysusers", "systemd"},
		{"/usr/bin/systemd-tmpfiles", "systemd"},
	}
)

// aptMu serialises installs inside this test binary; apt's own lock covers
// other processes.
var aptMu sync.Mutex

// requireRoot fails the test when it does not run as root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("e2e: these tests run a real Postfix, which needs root (uid 0); running as uid %d. Run `sudo go test ./test/e2e/` or test/run.sh", os.Geteuid())
	}
}

// requireDebian makes sure every file in files exists, installing the Debian
// packages that provide the missing ones (apt-get update once if the first
// install fails). It fails the test naming what is still missing.
func requireDebian(t testing.TB, files []debianFile) {
	t.Helper()
	aptMu.Lock()
	defer aptMu.Unlock()
	pkgs := missingPackages(files)
	if len(pkgs) == 0 {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatalf("e2e: Debian packages %s are missing and installing them needs root", strings.Join(pkgs, " "))
	}
	t.Logf("e2e: installing Debian packages %s", strings.Join(pkgs, " "))
	// Postfix asks what kind of mail system to set up; "No configuration"
	// leaves no system instance behind, only the programs.
	if err := runInput("debconf-set-selections",
		"postfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string example.test\n"); err != nil {
		t.Fatalf("e2e: preseeding debconf for postfix: %v", err)
	}
	out, err := aptInstall(pkgs)
	if err != nil || len(missingPackages(files)) > 0 {
		upd, uerr := exec.Command("apt-get", "update").CombinedOutput()
		if uerr != nil {
			t.Fatalf("e2e: apt-get install %s failed (%v) and so did apt-get update: %v\n%s\n%s",
				strings.Join(pkgs, " "), err, uerr, out, upd)
		}
		out, err = aptInstall(pkgs)
	}
	if still := missingPackages(files); err != nil || len(still) > 0 {
		var paths []string
		for _, f := range files {
			if !isExecutable(f.path) {
				paths = append(paths, f.path)
			}
		}
		t.Fatalf("e2e: could not install Debian packages %s (missing %s): %v\n%s",
			strings.Join(still, " "), strings.Join(paths, " "), err, tail(out, 4000))
	}
}

func aptInstall(pkgs []string) ([]byte, error) {
	args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// missingPackages lists (once each) the packages whose files are missing.
func missingPackages(files []debianFile) []string {
	var pkgs []string
	seen := map[string]bool{}
	for _, f := range files {
		if !isExecutable(f.path) && !seen[f.pkg] {
			seen[f.pkg] = true
			pkgs = append(pkgs, f.pkg)
		}
	}
	return pkgs
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func runInput(name, input string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out)
	}
	return nil
}

// repoRoot is the directory holding go.mod, above this package.
func repoRoot(t testing.TB) string { return testkit.RepoRoot(t) }

// repoFile reads a file of the repository by its path from the root.
func repoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return string(b)
}

// tail returns at most the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
