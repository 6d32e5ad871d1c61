package retrieval

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
)

// TestUnauthenticatedDenialsAreBounded is issue 10 item 3: 20,000
// unauthenticated requests used to add 20,000 fsynced audit lines. Now each
// address gets denialsPerSource lines a minute (all addresses together
// denialsPerWindow), and the rest are one aggregate line per address at the
// end of the window, whose counts add up to every request.
func TestUnauthenticatedDenialsAreBounded(t *testing.T) {
	const requests = 20_000
	for _, c := range []struct {
		name      string
		addr      func(i int) string
		maxLines  int
		wantTotal int64
	}{
		{"one address", func(int) string { return "192.0.2.7:4000" }, denialsPerSource + 1, requests},
		{"an address each", func(i int) string { return fmt.Sprintf("10.%d.%d.%d:4000", i>>16, i>>8&0xff, i&0xff) }, denialsPerWindow + 1, requests},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			h := f.srv.Config.Handler.(*handler)
			now := time.Unix(1_800_000_000, 0)
			h.denials.now = func() time.Time { return now }
			paths := []string{"/v1/messages", "/v1/messages/00001iso1i5k0ugf7bv4c839v822kc5dm6t801s/raw", "//v1/messages", "/messages/x"}
			for i := range requests {
				req := httptest.NewRequest("GET", paths[i%len(paths)], nil)
				req.RemoteAddr = c.addr(i)
				if i%2 == 0 {
					req.Header.Set("Authorization", "Bearer bad-token")
				}
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
			// The window ends (the timer would flush it; the test does not
			// wait for it).
			now = now.Add(denialWindow)
			h.denials.flush()
			ls := f.auditLines()
			var total int64
			aggregates := 0
			for _, l := range ls {
				if l.Action == access.ActionDenials {
					aggregates++
					total += l.Count
				} else {
					total++
				}
			}
			t.Logf("%d requests: %d audit lines, %d of them aggregates", requests, len(ls), aggregates)
			if total != c.wantTotal {
				t.Errorf("the lines account for %d requests, want %d", total, c.wantTotal)
			}
			if len(ls) > c.maxLines {
				t.Errorf("%d audit lines, want at most %d", len(ls), c.maxLines)
			}
		})
	}
}

// failingAudit is an audit log on a full file system: every record fails
// with ENOSPC, and from the first failure on Err says so.
type failingAudit struct {
	mu  sync.Mutex
	err error
}

func (a *failingAudit) Record(access.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = fmt.Errorf("auditlog: write: %w", syscall.ENOSPC)
	return a.err
}

func (a *failingAudit) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// TestAuditFullDiskRefusesReads: once the audit log cannot take a record,
// every read answers 503 and decrypts nothing; a denial is still answered,
// and nothing panics or exits.
func TestAuditFullDiskRefusesReads(t *testing.T) {
	f := newFixture(t)
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("hi", "body"), time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC))
	audit := &failingAudit{}
	srv := httptest.NewServer(NewHandler(Options{Vault: f.vault, Keys: f.keys, Lister: wrongLister{}, Users: f.users, Audit: audit, Logger: f.srv.Config.Handler.(*handler).log}))
	defer srv.Close()
	f.srv = srv
	// The first record fails (a denial); from then on the log is unusable.
	if res := f.get("/v1/messages", "bad-token"); res.status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", res.status)
	}
	if !errors.Is(audit.Err(), syscall.ENOSPC) {
		t.Fatalf("audit not failed: %v", audit.Err())
	}
	f.store.reset()
	for _, p := range []string{"/v1/messages", "/v1/messages/" + id, "/v1/messages/" + id + "/raw", "/v1/messages/" + id + "/parts/0"} {
		if res := f.get(p, f.tokens["alice"]); res.status != http.StatusServiceUnavailable {
			t.Errorf("GET %s with the audit log full: %d, want 503", p, res.status)
		}
	}
	if res := f.get("/readyz", ""); res.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the audit log full: %d", res.status)
	}
	if read, keys := f.store.reset(); read != 0 || len(keys) != 0 {
		t.Errorf("reads touched the store with the audit log full: %d bytes, %v", read, keys)
	}
	if res := f.get("/v1/messages", "bad-token"); res.status != http.StatusUnauthorized {
		t.Errorf("a denial with the audit log full: %d", res.status)
	}
}
