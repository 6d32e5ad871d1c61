package retrieval

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWebPageInChromium signs in, lists, opens a message and downloads the
// raw message and attachments in a real headless Chromium, and keeps
// screenshots under testdata/artifacts.
func TestWebPageInChromium(t *testing.T) {
	w := newWorld(t)
	b := startBrowser(t)
	dl := t.TempDir()
	b.call("", "Browser.setDownloadBehavior", map[string]any{"behavior": "allowAndName", "downloadPath": dl, "eventsEnabled": true})
	p := b.newPage()
	base := w.srv.URL
	artifacts := filepath.Join("testdata", "artifacts")

	// Signed out: the sign-in form.
	p.navigate(base + "/")
	if got := p.evalString(`document.querySelector('form#signin') ? 'form' : document.body.innerText`); got != "form" {
		t.Fatalf("no sign-in form: %s", got)
	}
	p.screenshot(filepath.Join(artifacts, "web-signin.png"))

	// A wrong token is refused on the page.
	p.evalAndLoad(`document.getElementById('token').value = 'wrong-token'; document.getElementById('signin').submit()`)
	if got := p.evalString(`(document.getElementById('error') || {}).innerText || ''`); !strings.Contains(got, "not valid") {
		t.Fatalf("wrong token: page says %q", got)
	}

	// Sign in as alice.
	p.evalAndLoad(`document.getElementById('token').value = ` + jsString(w.tokens["alice"]) + `; document.getElementById('signin').submit()`)
	if got := p.evalString(`(document.getElementById('who') || {}).innerText || document.body.innerText`); !strings.Contains(got, "alice") {
		t.Fatalf("after sign-in: %s", got)
	}
	var rows []string
	json.Unmarshal(p.eval(`Array.from(document.querySelectorAll('#messages tbody tr')).map(r => r.id)`), &rows)
	if want := []string{"m-" + w.idNull, "m-" + w.idShared, "m-" + w.idA}; !slices.Equal(rows, want) {
		t.Fatalf("alice's list %v, want %v", rows, want)
	}
	listText := p.evalString(`document.body.innerText`)
	for _, s := range []string{aliceSubject, "Carol <carol@other.org>", "report.pdf", "2025-06-02 10:00 UTC"} {
		if !strings.Contains(listText, s) {
			t.Errorf("list lacks %q:\n%s", s, listText)
		}
	}
	for _, s := range bobSecrets {
		if strings.Contains(p.evalString(`document.documentElement.outerHTML`), s) {
			t.Errorf("alice's list shows bob's %q", s)
		}
	}
	p.screenshot(filepath.Join(artifacts, "web-list.png"))

	// Open the message: headers and text body as text, HTML never live.
	p.evalAndLoad(`document.querySelector('#m-` + w.idA + ` a.open').click()`)
	if got := p.evalString(`document.getElementById('subject').innerText`); got != aliceSubject {
		t.Errorf("subject %q", got)
	}
	body := p.evalString(`document.getElementById('body').innerText`)
	for _, s := range []string{aliceBodyMarker, "Café", `<script>alert("not run")</script>`, "<b>not bold</b>"} {
		if !strings.Contains(body, s) {
			t.Errorf("body %q lacks %q", body, s)
		}
	}
	if got := p.evalString(`String(document.scripts.length) + ' ' + String(document.querySelectorAll('#body *').length) + ' ' + String(!!document.getElementById('evil')) + ' ' + document.title`); got != "0 0 false "+aliceSubject+" · mailvaultd" {
		t.Errorf("page state %q: want no script, no markup in the body, no archived HTML, title intact", got)
	}
	headers := p.evalString(`document.getElementById('headers').innerText`)
	for _, s := range []string{"Carol <carol@other.org>", "Alice <alice@example.com>", "<a1@other.org>", w.idA} {
		if !strings.Contains(headers, s) {
			t.Errorf("headers lack %q:\n%s", s, headers)
		}
	}
	if strings.Contains(headers, "hidden-bcc") {
		t.Errorf("alice sees another envelope recipient:\n%s", headers)
	}
	p.screenshot(filepath.Join(artifacts, "web-message.png"))

	// Downloads: the raw message and two attachments, byte-exact.
	data, name := b.download(p, dl, "#raw")
	if string(data) != string(mailForAlice()) || name != w.idA+".eml" {
		t.Errorf("raw download %q, %d bytes; want %s.eml, %d bytes", name, len(data), w.idA, len(mailForAlice()))
	}
	data, name = b.download(p, dl, `#parts a[href$="/parts/1"]`)
	if string(data) != "%PDF-1.4 "+aliceFileMarker || name != "report.pdf" {
		t.Errorf("attachment download %q: %q", name, data)
	}
	data, name = b.download(p, dl, `#parts a[href$="/parts/2"]`)
	if !strings.Contains(string(data), `<b id="evil">`) || name != "evil page.html" {
		t.Errorf("HTML part download %q: %q", name, data)
	}
	// Even when navigated to directly, archived HTML is a download.
	begin := b.expect("Browser.downloadWillBegin", nil)
	b.try(p.session, "Page.navigate", map[string]any{"url": base + "/v1/messages/" + w.idA + "/parts/2"})
	b.wait(begin, "the HTML part as a download")
	time.Sleep(200 * time.Millisecond)
	if got := p.evalString(`location.pathname`); got != "/messages/"+w.idA {
		t.Errorf("navigating to the HTML part left the page at %s", got)
	}

	// Bob's message is "not found" for alice, like one that does not exist.
	p.navigate(base + "/messages/" + w.idB)
	if got := p.evalString(`document.body.innerText`); !strings.Contains(got, "no such message") || strings.Contains(got, bobSubject) {
		t.Errorf("alice opening bob's message: %s", got)
	}

	// Sign out: the session is gone.
	p.navigate(base + "/")
	p.evalAndLoad(`document.getElementById('signout').click()`)
	p.navigate(base + "/messages/" + w.idA)
	if got := p.evalString(`document.querySelector('form#signin') ? 'form' : location.pathname`); got != "form" {
		t.Errorf("after sign-out: %s", got)
	}

	// Every step is in the audit log.
	seen := map[string]bool{}
	for _, l := range w.auditLines() {
		seen[l.User+" "+l.Action+" "+l.Outcome] = true
	}
	for _, want := range []string{" signin unauthenticated", "alice signin ok", "alice list ok", "alice view ok", "alice raw ok", "alice part ok", "alice view denied"} {
		if !seen[want] {
			t.Errorf("no audit line %q in %v", want, seen)
		}
	}
	t.Logf("screenshots in %s: web-signin.png, web-list.png, web-message.png", artifacts)
}
