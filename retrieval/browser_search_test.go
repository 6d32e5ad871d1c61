package retrieval

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/export"
	"github.com/mailvault/mailvaultd/restore"
)

// TestSearchExportRestoreInChromium: in a real headless Chromium, alice
// searches (the query stays in the box, the count shows, a refused query
// says why), downloads the results as mbox (byte for byte her messages),
// opens the syntax help and restores a message to her mailbox, seeing the
// next hop's reply.
func TestSearchExportRestoreInChromium(t *testing.T) {
	rr := &recordingRestorer{reply: restore.Reply{Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as 4XYZ"}}
	f := newFixtureWith(t, func(o *Options) {
		o.Lister = &searchLister{inner: o.Lister}
		o.Restorer = rr
	})
	want := depositExportSet(f)
	b := startBrowser(t)
	dl := t.TempDir()
	b.call("", "Browser.setDownloadBehavior", map[string]any{"behavior": "allowAndName", "downloadPath": dl, "eventsEnabled": true})
	p := b.newPage()
	base := f.srv.URL
	artifacts := filepath.Join("testdata", "artifacts")

	p.navigate(base + "/")
	p.evalAndLoad(`document.getElementById('token').value = ` + jsString(f.tokens["alice"]) + `; document.getElementById('signin').submit()`)

	// Search: the box keeps the query, the count shows, the rows are hers.
	p.evalAndLoad(`document.getElementById('q').value = 'from:x@other.org'; document.getElementById('filter').submit()`)
	if got := p.evalString(`document.getElementById('q').value`); got != "from:x@other.org" {
		t.Errorf("search box holds %q after the search", got)
	}
	if got := p.evalString(`(document.getElementById('count') || {}).innerText || ''`); got != "More than 41 messages match." {
		t.Errorf("count line %q", got)
	}
	var rows []string
	json.Unmarshal(p.eval(`Array.from(document.querySelectorAll('#messages tbody tr')).map(r => r.id)`), &rows)
	if len(rows) != len(want) {
		t.Errorf("rows %v, want alice's %d", rows, len(want))
	}
	if got := p.evalString(`document.getElementById('syntax-help').open = true; document.getElementById('syntax-help').innerText`); !strings.Contains(got, "has:attachment") || !strings.Contains(got, "newer_than:7d") {
		t.Errorf("syntax help lacks the operators: %q", got)
	}
	p.screenshot(filepath.Join(artifacts, "web-search.png"))

	// Export these results: the mbox holds her messages byte for byte.
	data, name := b.download(p, dl, "#export-mbox")
	if name != "mailvaultd-export.mbox" {
		t.Errorf("export file named %q", name)
	}
	n := 0
	err := export.ReadMbox(bytes.NewReader(data), func(_ string, raw []byte) error {
		for _, w := range want {
			if bytes.Equal(w, raw) {
				n++
				return nil
			}
		}
		t.Errorf("exported message %q is none of alice's", raw)
		return nil
	})
	if err != nil || n != len(want) {
		t.Errorf("mbox export: %d of %d messages (%v)", n, len(want), err)
	}

	// A refused query: the reason, the query kept.
	p.evalAndLoad(`document.getElementById('q').value = 'bad'; document.getElementById('filter').submit()`)
	if got := p.evalString(`(document.getElementById('error') || {}).innerText || ''`); !strings.Contains(got, "unexpected end of query") {
		t.Errorf("refused query: page says %q", got)
	}
	if got := p.evalString(`document.getElementById('q').value`); got != "bad" {
		t.Errorf("search box holds %q after a refused query", got)
	}

	// Restore a message to her own mailbox.
	var id string
	for k := range want {
		id = k
		break
	}
	p.navigate(base + "/messages/" + id)
	p.evalAndLoad(`document.getElementById('restore-button').click()`)
	if got := p.evalString(`document.body.innerText`); !strings.Contains(got, "Restored") || !strings.Contains(got, "250 2.0.0 Ok: queued as 4XYZ") || !strings.Contains(got, "alice@example.com") {
		t.Errorf("restore page: %s", got)
	}
	rr.mu.Lock()
	calls := append([]string(nil), rr.calls...)
	rr.mu.Unlock()
	if len(calls) != 1 || calls[0] != id+" alice@example.com" {
		t.Errorf("restorer got %q, want %s to alice@example.com", calls, id)
	}
	p.screenshot(filepath.Join(artifacts, "web-restore.png"))
}

// TestWebRestoreCrossOrigin: the restore button's POST from another site is
// refused and restores nothing.
func TestWebRestoreCrossOrigin(t *testing.T) {
	rr := &recordingRestorer{reply: restore.Reply{Code: 250}}
	f := newFixtureWith(t, func(o *Options) { o.Restorer = rr })
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("a", "a"), time.Now())
	res := f.post("/messages/"+id+"/restore", f.tokens["alice"], "application/x-www-form-urlencoded", "to=", map[string]string{"Origin": "https://evil.example"})
	if res.status != http.StatusForbidden || len(rr.calls) != 0 {
		t.Errorf("cross-origin restore: %d, restorer got %q", res.status, rr.calls)
	}
}
