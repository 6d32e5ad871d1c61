package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The mailvaultd binary the integration tests run, built once per test
// binary into a temporary directory that RunWithBinary removes.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// RunWithBinary runs the tests of a package that calls Binary and removes
// the built binary afterwards: call it from TestMain,
//
//	func TestMain(m *testing.M) { os.Exit(testkit.RunWithBinary(m)) }
func RunWithBinary(m *testing.M) int {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// Binary returns the path of ./cmd/mailvaultd built from this checkout,
// building it on the first call of the test binary.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := findRepoRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, binErr = os.MkdirTemp("", "mailvaultd-test-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "mailvaultd")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/mailvaultd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/mailvaultd: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// RepoRoot returns the directory of the go.mod above the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testkit: no go.mod above %s", dir)
		}
		dir = parent
	}
}
