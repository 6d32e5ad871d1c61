package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/internal/config"
)

// searchIDs runs `search -json QUERY [args]` and returns the ids it prints.
func searchIDs(t *testing.T, st setup, q string, args ...string) []string {
	t.Helper()
	args = append([]string{"search", q, "-json", "-config", st.cfg}, args...)
	r := runCLI(t, st.bin, st.dir, args...)
	if r.code != 0 {
		t.Fatalf("search %q: exit %d: %s", q, r.code, r.stderr)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var hit struct{ ID string }
		if err := json.Unmarshal([]byte(line), &hit); err != nil {
			t.Fatalf("search -json line %q: %v", line, err)
		}
		ids = append(ids, hit.ID)
	}
	return ids
}

// TestSearchAndCatalogCommands: mail delivered through the daemon is found
// by `search` at once (audited with its query); with the catalog deleted,
// `catalog verify` reports every message missing, `catalog rebuild` puts
// them back, and `verify -repair` mends a catalog that lost them again.
func TestSearchAndCatalogCommands(t *testing.T) {
	st := newSetup(t)
	d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	idA := sendOne(t, st.smtpAddr, []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: capybara minutes\r\n\r\nthe wombatish plan\r\n"))
	idB := sendOne(t, st.smtpAddr, []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: other\r\n\r\nnothing to see\r\n"))

	if got := searchIDs(t, st, "capybara"); len(got) != 1 || got[0] != idA {
		t.Fatalf("search capybara: %v, want [%s]", got, idA)
	}
	if got := searchIDs(t, st, "from:a@example.test"); len(got) != 2 || got[0] != idB {
		t.Fatalf("search from: %v, want [%s %s]", got, idB, idA)
	}
	if r := runCLI(t, st.bin, st.dir, "search", "has:spaceship", "-config", st.cfg); r.code == 0 || !strings.Contains(r.stderr, "has:") {
		t.Fatalf("a bad query: exit %d, %s", r.code, r.stderr)
	}
	auditPath := filepath.Join(st.dir, "audit.jsonl")
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"action":"`+access.ActionSearch+`"`) || !strings.Contains(string(b), `"query":"capybara"`) ||
		!strings.Contains(string(b), `"query":"has:spaceship"`) {
		t.Fatalf("searches not audited with their query:\n%s", b)
	}
	stopDaemon(t, d)

	dbFiles, _ := filepath.Glob(filepath.Join(st.dir, "catalog.db*"))
	if len(dbFiles) == 0 {
		t.Fatal("the daemon made no catalog file")
	}
	removeAll := func() {
		files, _ := filepath.Glob(filepath.Join(st.dir, "catalog.db*"))
		for _, f := range files {
			os.Remove(f)
		}
	}
	removeAll()
	r := runCLI(t, st.bin, st.dir, "catalog", "verify", "-config", st.cfg)
	if r.code == 0 || !strings.Contains(r.stdout, "missing\t"+idA) || !strings.Contains(r.stdout, "2 missing") {
		t.Fatalf("verify of an empty catalog: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, st.bin, st.dir, "catalog", "rebuild", "-workers", "2", "-config", st.cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "2 archived, 2 indexed") || !strings.Contains(r.stderr, "ETA") {
		t.Fatalf("rebuild: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := searchIDs(t, st, "wombatish"); len(got) != 1 || got[0] != idA {
		t.Fatalf("search after rebuild: %v", got)
	}
	if r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-config", st.cfg); r.code != 0 || !strings.Contains(r.stdout, "0 missing, 0 orphans") {
		t.Fatalf("verify after rebuild: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	removeAll()
	if r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-repair", "-config", st.cfg); r.code != 0 || !strings.Contains(r.stdout, "repaired") {
		t.Fatalf("verify -repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := searchIDs(t, st, "capybara"); len(got) != 1 || got[0] != idA {
		t.Fatalf("search after repair: %v", got)
	}
}

// TestCatalogUnavailableMailStillArchived: a catalog that cannot be opened
// at start does not stop the daemon or mail; /readyz fails, and `catalog
// verify -repair` indexes what arrived meanwhile once the catalog can be
// opened.
func TestCatalogUnavailableMailStillArchived(t *testing.T) {
	st := newSetup(t)
	blocker := filepath.Join(st.dir, "not-a-directory")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, st.dir, func(c *config.Config) {
		c.SMTP.Listen, c.Retrieval.Listen = st.smtpAddr, st.httpAddr
		c.Catalog.SQLite.Path = filepath.Join(blocker, "catalog.db")
	})
	d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	if !strings.Contains(d.logs.String(), "catalog unavailable") {
		t.Fatalf("no log of the unavailable catalog:\n%s", d.logs.String())
	}
	id := sendOne(t, st.smtpAddr, []byte("From: a@example.test\r\nTo: bob@example.test\r\nSubject: okapi\r\n\r\nstill archived\r\n"))
	resp, err := http.Get("http://" + st.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"catalog"`) {
		t.Fatalf("/readyz answered %d %s with the catalog unavailable; want 503 naming the catalog", resp.StatusCode, body)
	}
	// Listings need the catalog: 503 (the service's trouble), not 500.
	r := runCLI(t, st.bin, st.dir, "users", "add", "carol", "-auditor", "-config", st.cfg)
	if r.code != 0 {
		t.Fatalf("users add: %s", r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	stopDaemon(t, d)
	d = startDaemon(t, st.bin, st.dir, "-config", st.cfg) // reads the new users file
	req, _ := http.NewRequest("GET", "http://"+st.httpAddr+"/v1/messages", nil)
	req.Header.Set("Authorization", "Bearer "+lines[len(lines)-1])
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a listing answered %d with the catalog unavailable, want 503", resp.StatusCode)
	}
	stopDaemon(t, d)
	if r := runCLI(t, st.bin, st.dir, "get", id, "-config", st.cfg); r.code != 0 || !strings.Contains(r.stdout, "okapi") {
		t.Fatalf("get: exit %d %s", r.code, r.stderr)
	}

	writeConfig(t, st.dir, func(c *config.Config) {
		c.SMTP.Listen, c.Retrieval.Listen = st.smtpAddr, st.httpAddr
	})
	r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-repair", "-config", st.cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "missing\t"+id) || !strings.Contains(r.stdout, "repaired") {
		t.Fatalf("verify -repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := searchIDs(t, st, "okapi"); len(got) != 1 || got[0] != id {
		t.Fatalf("search after repair: %v", got)
	}
}
