package testkit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvaultd/internal/config"
)

// Config returns the configuration of a test daemon that keeps everything
// under dir: the production defaults, store-only (no next hop), a local
// keyring at dir/keyring.json, an fs archive at dir/archive, the users file
// audit log and SQLite catalog beside them, and SMTP and HTTP on free loopback ports. A test
// changes what it needs and writes it with WriteConfig.
func Config(t testing.TB, dir string) *config.Config {
	t.Helper()
	c := config.Default()
	c.SMTP.Listen = FreeAddr(t)
	c.SMTP.Hostname = "mailvault.test"
	c.Forward.NextHop = ""
	c.Keys.Local.Keyring = filepath.Join(dir, "keyring.json")
	c.Archive.FS.Dir = filepath.Join(dir, "archive")
	c.Retrieval.Listen = FreeAddr(t)
	c.Retrieval.UsersFile = filepath.Join(dir, "users.yaml")
	c.Retrieval.AuditLog = filepath.Join(dir, "audit.jsonl")
	c.Catalog.SQLite.Path = filepath.Join(dir, "catalog.db")
	return c
}

// WriteConfig writes c to path (mode 0600) as the daemon reads it, sets
// c.File to path and returns path. It fails the test if c is not valid, so
// that a test meaning to start a daemon does not find out from its exit.
func WriteConfig(t testing.TB, path string, c *config.Config) string {
	t.Helper()
	c.File = path
	if err := c.Validate(); err != nil {
		t.Fatalf("testkit: the test's configuration is invalid: %v", err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
