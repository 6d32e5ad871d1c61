package retrieval

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/usersfile"
)

// Markers that must never reach a reader other than the message's own.
const (
	aliceSubject    = "For Alice eyes only"
	aliceBodyMarker = "ALICE-SECRET-BODY-7f3a"
	aliceFileMarker = "ALICE-ATTACHMENT-CONTENT-91bc"
	bobSubject      = "Bob private plan"
	bobBodyMarker   = "BOB-SECRET-BODY-44d1"
	bobFileMarker   = "BOB-ATTACHMENT-CONTENT-0e2f"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func b64lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s + "\n")
	return out.String()
}

// mailForAlice has a text body, a PDF attachment and an HTML part that
// must never be rendered.
func mailForAlice() []byte {
	return crlf(`From: Carol <carol@other.org>
To: Alice <alice@example.com>
Subject: ` + aliceSubject + `
Date: Mon, 02 Jun 2025 10:00:00 +0000
Message-ID: <a1@other.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"

--XYZ
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello Alice, ` + aliceBodyMarker + `.
Caf=C3=A9 <script>alert("not run")</script> & <b>not bold</b>
--XYZ
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

` + b64lines([]byte("%PDF-1.4 "+aliceFileMarker)) + `--XYZ
Content-Type: text/html; charset=utf-8
Content-Disposition: attachment; filename="../../evil page.html"

<html><body><b id="evil">EVIL</b><script>document.title="pwned"</script></body></html>
--XYZ--
`)
}

func mailForBob() []byte {
	return crlf(`From: dave@other.org
To: bob@example.com
Subject: ` + bobSubject + `
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Bob, ` + bobBodyMarker + ` na=EFve.
--b1
Content-Type: text/plain; name="plan.txt"
Content-Disposition: attachment; filename*=UTF-8''Bob%E2%80%99s%20plan.txt
Content-Transfer-Encoding: base64

` + b64lines([]byte(bobFileMarker)) + `--b1--
`)
}

func simpleMail(subject, body string) []byte {
	return crlf("From: x@other.org\nSubject: " + subject + "\n\n" + body + "\n")
}

var (
	aliceSecrets = []string{aliceSubject, aliceBodyMarker, aliceFileMarker, base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 " + aliceFileMarker))[:40]}
	bobSecrets   = []string{bobSubject, bobBodyMarker, bobFileMarker, base64.StdEncoding.EncodeToString([]byte(bobFileMarker))[:24]}
)

type world struct {
	*fixture
	idA, idB, idShared, idTag, idNull string
}

func newWorld(t *testing.T) *world {
	f := newFixture(t)
	base := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	w := &world{fixture: f}
	w.idA = f.deposit(archive.Envelope{From: "carol@other.org", To: []string{"alice@example.com", "hidden-bcc@other.org"}}, mailForAlice(), base)
	w.idB = f.deposit(archive.Envelope{From: "dave@other.org", To: []string{"bob@example.com"}}, mailForBob(), base.Add(time.Minute))
	// To both readers; the +tag mailbox is bob's.
	w.idShared = f.deposit(archive.Envelope{From: "<ALICE@example.com>", To: []string{"BOB+NEWS@Example.com"}}, simpleMail("shared", "for both"), base.Add(2*time.Minute))
	// A +tag that is not bob's: not his.
	w.idTag = f.deposit(archive.Envelope{From: "x@other.org", To: []string{"bob+other@example.com"}}, simpleMail("tagged", "for bob+other"), base.Add(3*time.Minute))
	// The null sender: readable by its recipient only.
	w.idNull = f.deposit(archive.Envelope{From: "", To: []string{"alice@example.com"}}, simpleMail("bounce", "a bounce"), base.Add(4*time.Minute))
	f.store.reset()
	// The matrix sends bad tokens from one address many times; the back-off
	// has its own test.
	h := f.srv.Config.Handler.(*handler)
	h.throttle.free = 1 << 20
	// It records every denial one by one too.
	h.denials.perSource, h.denials.perWindow = 1<<20, 1<<20
	return w
}

func listIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var lr listResponse
	if err := json.Unmarshal(body, &lr); err != nil {
		t.Fatalf("list body %s: %v", body, err)
	}
	var ids []string
	for _, m := range lr.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestAuthorisationMatrix: readers A and B, the auditor, no token and a bad
// token against list, manifest, raw and part of A's and B's messages.
func TestAuthorisationMatrix(t *testing.T) {
	w := newWorld(t)
	badToken := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	callers := []struct{ name, token string }{
		{"alice", w.tokens["alice"]},
		{"bob", w.tokens["bob"]},
		{"auditor", w.tokens["auditor"]},
		{"none", ""},
		{"bad", badToken},
	}
	type want struct{ list, manifest, raw, part int }
	matrix := map[string]map[string]want{
		w.idA: {
			"alice": {200, 200, 200, 200}, "bob": {200, 404, 404, 404}, "auditor": {200, 200, 200, 200},
			"none": {401, 401, 401, 401}, "bad": {401, 401, 401, 401},
		},
		w.idB: {
			"alice": {200, 404, 404, 404}, "bob": {200, 200, 200, 200}, "auditor": {200, 200, 200, 200},
			"none": {401, 401, 401, 401}, "bad": {401, 401, 401, 401},
		},
	}
	owner := map[string]string{w.idA: "alice", w.idB: "bob"}
	foreign := map[string][]string{"alice": bobSecrets, "bob": aliceSecrets}
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %-7s %5s %8s %5s %5s\n", "caller", "message", "list", "manifest", "raw", "part")
	for _, id := range []string{w.idA, w.idB} {
		for _, c := range callers {
			exp := matrix[id][c.name]
			t.Run(owner[id]+"'s message/"+c.name, func(t *testing.T) {
				got := want{}
				for _, a := range []struct {
					action string
					path   string
					status *int
					want   int
				}{
					{access.ActionList, "/v1/messages", &got.list, exp.list},
					{access.ActionManifest, "/v1/messages/" + id, &got.manifest, exp.manifest},
					{access.ActionRaw, "/v1/messages/" + id + "/raw", &got.raw, exp.raw},
					{access.ActionPart, "/v1/messages/" + id + "/parts/1", &got.part, exp.part},
				} {
					before := len(w.auditLines())
					res := w.get(a.path, c.token)
					*a.status = res.status
					if res.status != a.want {
						t.Errorf("%s %s: status %d, want %d (%s)", c.name, a.action, res.status, a.want, res.body)
					}
					for _, s := range foreign[c.name] {
						if bytes.Contains(res.body, []byte(s)) {
							t.Errorf("%s %s: response contains %q from another mailbox", c.name, a.action, s)
						}
					}
					if res.status == 404 || res.status == 401 {
						if ct := res.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
							t.Errorf("%s %s: content type %q", c.name, a.action, ct)
						}
					}
					if a.action == access.ActionList && res.status == 200 {
						ids := listIDs(t, res.body)
						sees := slices.Contains(ids, id)
						if wantSees := c.name == "auditor" || c.name == owner[id]; sees != wantSees {
							t.Errorf("%s list: sees %s = %v, want %v", c.name, owner[id], sees, wantSees)
						}
					}
					ls := w.waitAudit(before + 1)
					if len(ls) != before+1 {
						t.Fatalf("%s %s: %d new audit lines, want 1", c.name, a.action, len(ls)-before)
					}
					checkAudit(t, ls[before], c.name, a.action, id, res.status)
				}
				fmt.Fprintf(&table, "%-8s %-7s %5d %8d %5d %5d\n", c.name, owner[id], got.list, got.manifest, got.raw, got.part)
			})
		}
	}
	t.Logf("authorisation matrix (message = whose message is asked for):\n%s", table.String())
	writeArtifact(t, "authorisation-matrix.txt", table.String())
}

func checkAudit(t *testing.T, l auditLine, caller, action, id string, status int) {
	t.Helper()
	wantOutcome := map[int]string{200: access.OutcomeOK, 401: access.OutcomeUnauthenticated, 404: access.OutcomeDenied, 403: access.OutcomeDenied, 400: access.OutcomeBadRequest}[status]
	wantUser := caller
	if caller == "none" || caller == "bad" {
		wantUser = ""
	}
	if l.Action != action || l.User != wantUser || l.Outcome != wantOutcome {
		t.Errorf("audit line %+v: want action %s user %q outcome %s", l, action, wantUser, wantOutcome)
	}
	if action != access.ActionList && status != 401 && l.MessageID != id {
		t.Errorf("audit line message id %q, want %q", l.MessageID, id)
	}
	if action == access.ActionPart && status != 401 && (l.Part == nil || *l.Part != 1) {
		t.Errorf("audit line part %v, want 1", l.Part)
	}
	if status == 200 && action != access.ActionList && l.Bytes == 0 {
		t.Errorf("audit line of a read records 0 bytes")
	}
	if status != 200 && l.Bytes != 0 {
		t.Errorf("audit line of a refusal records %d bytes", l.Bytes)
	}
	if !strings.HasPrefix(l.Remote, "127.0.0.1:") || l.Time.IsZero() {
		t.Errorf("audit line remote %q time %v", l.Remote, l.Time)
	}
}

func TestNotFoundIsTheSameAsDenied(t *testing.T) {
	w := newWorld(t)
	ghost := archive.NewID(time.Now())
	for _, suffix := range []string{"", "/raw", "/parts/0"} {
		denied := w.get("/v1/messages/"+w.idA+suffix, w.tokens["bob"])
		absent := w.get("/v1/messages/"+ghost+suffix, w.tokens["bob"])
		if denied.status != 404 || absent.status != 404 {
			t.Fatalf("%s: denied %d, absent %d; want 404 both", suffix, denied.status, absent.status)
		}
		if !bytes.Equal(denied.body, absent.body) {
			t.Errorf("%s: denied body %q, absent body %q", suffix, denied.body, absent.body)
		}
		denied.header.Del("Date")
		absent.header.Del("Date")
		if fmt.Sprint(denied.header) != fmt.Sprint(absent.header) {
			t.Errorf("%s: denied headers %v, absent headers %v", suffix, denied.header, absent.header)
		}
	}
	ls := w.auditLines()
	outcomes := map[string]int{}
	for _, l := range ls {
		outcomes[l.Outcome]++
	}
	if outcomes[access.OutcomeDenied] != 3 || outcomes[access.OutcomeNotFound] != 3 {
		t.Errorf("audit outcomes %v: want 3 denied, 3 not_found", outcomes)
	}
}

func TestAddressNormalisation(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct {
		user, id string
		want     int
	}{
		{"alice", w.idShared, 200}, // envelope sender <ALICE@example.com>
		{"bob", w.idShared, 200},   // BOB+NEWS@Example.com is bob's bob+news@example.com
		{"bob", w.idTag, 404},      // bob+other@ is not bob's
		{"alice", w.idTag, 404},
		{"alice", w.idNull, 200}, // null sender, alice a recipient
		{"bob", w.idNull, 404},
		{"auditor", w.idTag, 200},
	} {
		if res := w.get("/v1/messages/"+c.id, w.tokens[c.user]); res.status != c.want {
			t.Errorf("%s reads %s: %d, want %d", c.user, c.id, res.status, c.want)
		}
	}
	// bob lists all of his mailboxes merged, or one of them.
	res := w.get("/v1/messages", w.tokens["bob"])
	if got := listIDs(t, res.body); !slices.Equal(got, []string{w.idShared, w.idB}) {
		t.Errorf("bob's listing %v, want [shared B]", got)
	}
	res = w.get("/v1/messages?mailbox="+url.QueryEscape("BOB+news@example.com"), w.tokens["bob"])
	if got := listIDs(t, res.body); !slices.Equal(got, []string{w.idShared}) {
		t.Errorf("bob's +news listing %v, want [shared]", got)
	}
	res = w.get("/v1/messages?mailbox=alice@example.com", w.tokens["bob"])
	if res.status != 403 {
		t.Errorf("bob lists alice's mailbox: %d, want 403", res.status)
	}
	// A recipient does not learn the other recipients (a Bcc) of a message.
	res = w.get("/v1/messages/"+w.idA, w.tokens["alice"])
	var m sealed.Manifest
	if err := json.Unmarshal(res.body, &m); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.To, []string{"alice@example.com"}) {
		t.Errorf("alice sees recipients %v", m.To)
	}
	res = w.get("/v1/messages/"+w.idA, w.tokens["auditor"])
	json.Unmarshal(res.body, &m)
	if len(m.To) != 2 {
		t.Errorf("the auditor sees recipients %v", m.To)
	}
}

func TestListPagination(t *testing.T) {
	f := newFixture(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range 7 {
		env := archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}
		if i%2 == 1 {
			env.To = []string{"bob@example.com", "alice@example.com"}
		}
		id := f.deposit(env, simpleMail(fmt.Sprint("m", i), "body"), base.Add(time.Duration(i)*time.Hour))
		want = append([]string{id}, want...) // newest first
	}
	for _, user := range []string{"alice", "auditor"} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			q := "/v1/messages?limit=3"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			res := f.get(q, f.tokens[user])
			if res.status != 200 {
				t.Fatalf("%s page %d: %d %s", user, page, res.status, res.body)
			}
			var lr listResponse
			json.Unmarshal(res.body, &lr)
			if len(lr.Messages) > 3 {
				t.Fatalf("page of %d", len(lr.Messages))
			}
			for _, m := range lr.Messages {
				got = append(got, m.ID)
			}
			if lr.NextCursor == "" {
				break
			}
			cursor = url.QueryEscape(lr.NextCursor)
			if page > 5 {
				t.Fatal("too many pages")
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s paged listing %v, want %v", user, got, want)
		}
	}
	// Time range: [since, until).
	res := f.get("/v1/messages?since="+base.Add(2*time.Hour).Format(time.RFC3339)+"&until="+base.Add(5*time.Hour).Format(time.RFC3339), f.tokens["alice"])
	if got := listIDs(t, res.body); !slices.Equal(got, want[2:5]) {
		t.Errorf("range listing %v, want %v", got, want[2:5])
	}
	// Page size: above the maximum is lowered to it; nonsense is refused.
	if res := f.get("/v1/messages?limit=100000", f.tokens["alice"]); res.status != 200 {
		t.Errorf("limit above the maximum: %d", res.status)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=x", "since=yesterday", "cursor=%2e%2e", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2025-01-01T00:00:00Z","id":"../x"}`)), "mailbox=..%2F..%2Fetc", "bogus=1", "limit=1&limit=2", "since=2025-01-02&until=2025-01-01"} {
		if res := f.get("/v1/messages?"+q, f.tokens["alice"]); res.status != 400 {
			t.Errorf("%s: %d, want 400", q, res.status)
		}
	}
}

// TestOddIDs: traversal, encodings, absolute paths, huge and unicode ids are
// refused before any store access.
func TestOddIDs(t *testing.T) {
	w := newWorld(t)
	long := strings.Repeat("a", 10*1024)
	odd := []string{
		"..", "../", "..%2f", "%2e%2e", "%2e%2e%2f", "%2E%2E%2Fkeyring.json", "%2e%2e%2f%2e%2e%2fkeyring.json",
		"..%2f..%2f..%2fetc%2fpasswd", "..%5c..%5ckeyring.json", "%252e%252e%252f", "/etc/passwd", "%2fetc%2fpasswd",
		"msg%2f" + w.idA, ".", "...", long, "ü", "%C3%BC", "%00", "a%00b", "%0d%0aX-Injected:%201",
		strings.Repeat("ü", 20), strings.ToUpper(w.idA), w.idA + "x", w.idA[:38], w.idA + "%2f..",
		w.idA[:38] + "w", "keyring.json", "..;", "%2e", "*", "~",
	}
	for _, o := range odd {
		for _, suffix := range []string{"", "/raw", "/parts/0"} {
			target := "/v1/messages/" + o + suffix
			before := len(w.auditLines())
			w.store.reset()
			res := w.rawGet(target, w.tokens["auditor"])
			_, keys := w.store.reset()
			name := target
			if len(name) > 80 {
				name = name[:80] + "…"
			}
			if res.status != 400 && res.status != 404 {
				t.Errorf("%s: status %d, want 400 or 404 (%s)", name, res.status, res.body)
			}
			for _, k := range keys {
				op, key, _ := strings.Cut(k, " ")
				if op != "head" && op != "get" || !strings.HasPrefix(key, "msg/") || !archive.ValidID(strings.TrimSuffix(strings.TrimPrefix(key, "msg/"), ".manifest")) {
					t.Errorf("%s: store access %q", name, k)
				}
			}
			if len(keys) > 0 && !archive.ValidID(o) {
				t.Errorf("%s: a malformed id reached the store: %v", name, keys)
			}
			for _, s := range aliceSecrets {
				if bytes.Contains(res.body, []byte(s)) {
					t.Errorf("%s: response holds message content", name)
				}
			}
			if res.status == 400 {
				ls := w.waitAudit(before + 1)
				if len(ls) != before+1 || ls[before].Outcome != access.OutcomeBadRequest || ls[before].User != "auditor" {
					t.Errorf("%s: no bad_request audit line (%d new)", name, len(ls)-before)
				}
			}
		}
	}
	for _, p := range []string{"-1", "01", "1e3", "99999999999", "+1", "0x1", "1.0", ""} {
		res := w.rawGet("/v1/messages/"+w.idA+"/parts/"+p, w.tokens["auditor"])
		if res.status != 400 && res.status != 404 {
			t.Errorf("part %q: %d", p, res.status)
		}
	}
	if res := w.get("/v1/messages/"+w.idA+"/parts/3", w.tokens["auditor"]); res.status != 404 {
		t.Errorf("part 3 of 3: %d, want 404", res.status)
	}
	// The archive directory is untouched and nothing outside it was read:
	// every key the store saw is under msg/, idx/ or all/.
}

func TestRawAndParts(t *testing.T) {
	w := newWorld(t)
	res := w.get("/v1/messages/"+w.idA+"/raw", w.tokens["alice"])
	if res.status != 200 || !bytes.Equal(res.body, mailForAlice()) {
		t.Fatalf("raw: %d, %d bytes; want the %d bytes received", res.status, len(res.body), len(mailForAlice()))
	}
	for k, v := range map[string]string{
		"Content-Type":           "message/rfc822",
		"Content-Disposition":    `attachment; filename="` + w.idA + `.eml"; filename*=UTF-8''` + w.idA + `.eml`,
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Content-Length":         fmt.Sprint(len(mailForAlice())),
	} {
		if got := res.header.Get(k); got != v {
			t.Errorf("raw %s = %q, want %q", k, got, v)
		}
	}
	cases := []struct {
		id, user    string
		n           int
		body        string
		ctype, disp string
	}{
		{w.idA, "alice", 0, "Hello Alice, " + aliceBodyMarker + ".\r\nCafé <script>alert(\"not run\")</script> & <b>not bold</b>", "text/plain; charset=utf-8", `attachment; filename="` + w.idA + `-part0.txt"`},
		{w.idA, "alice", 1, "%PDF-1.4 " + aliceFileMarker, "application/pdf", `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`},
		{w.idA, "alice", 2, `<html><body><b id="evil">EVIL</b>`, "text/html; charset=utf-8", `attachment; filename="evil page.html"; filename*=UTF-8''evil%20page.html`},
		{w.idB, "bob", 1, bobFileMarker, "text/plain", `attachment; filename="Bob_s plan.txt"; filename*=UTF-8''Bob%E2%80%99s%20plan.txt`},
		{w.idB, "bob", 0, "Bob, " + bobBodyMarker + " na\xefve.", "text/plain; charset=iso-8859-1", ""},
	}
	for _, c := range cases {
		res := w.get(fmt.Sprintf("/v1/messages/%s/parts/%d", c.id, c.n), w.tokens[c.user])
		if res.status != 200 {
			t.Errorf("part %d: %d %s", c.n, res.status, res.body)
			continue
		}
		if !strings.HasPrefix(string(res.body), c.body) {
			t.Errorf("part %d body %q, want prefix %q", c.n, res.body, c.body)
		}
		if got := res.header.Get("Content-Type"); got != c.ctype {
			t.Errorf("part %d content type %q, want %q", c.n, got, c.ctype)
		}
		if got := res.header.Get("Content-Disposition"); !strings.HasPrefix(got, c.disp) || !strings.HasPrefix(got, "attachment;") {
			t.Errorf("part %d disposition %q, want prefix %q", c.n, got, c.disp)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(res.header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("part %d: headers %v", c.n, res.header)
		}
		if res.header.Get("Content-Length") != fmt.Sprint(len(res.body)) {
			t.Errorf("part %d: Content-Length %s for %d bytes", c.n, res.header.Get("Content-Length"), len(res.body))
		}
	}
	// The same bytes for the command line.
	var buf bytes.Buffer
	if n, err := sealed.Copy(context.Background(), w.vault, w.keys, w.idB, &buf); err != nil || n != int64(len(mailForBob())) || !bytes.Equal(buf.Bytes(), mailForBob()) {
		t.Errorf("sealed.Copy = %d, %v", n, err)
	}
	if _, err := sealed.Copy(context.Background(), w.vault, w.keys, "../x", &buf); err == nil {
		t.Error("sealed.Copy accepted a malformed id")
	}
	// HEAD decrypts nothing.
	req, _ := http.NewRequest("HEAD", w.srv.URL+"/v1/messages/"+w.idA+"/raw", nil)
	req.Header.Set("Authorization", "Bearer "+w.tokens["alice"])
	if res, err := w.srv.Client().Do(req); err != nil || res.StatusCode != 405 {
		t.Errorf("HEAD raw: %v %v", res.StatusCode, err)
	}
	// The manifest endpoint.
	res = w.get("/v1/messages/"+w.idB, w.tokens["bob"])
	var m sealed.Manifest
	if err := json.Unmarshal(res.body, &m); err != nil || m.ID != w.idB || m.Header.Subject != bobSubject || len(m.Parts) != 2 {
		t.Errorf("manifest %s: %v", res.body, err)
	}
}

func TestPartFilename(t *testing.T) {
	id := strings.Repeat("0", 39)
	for _, c := range []struct {
		name, ctype string
		want        string
	}{
		{"report.pdf", "application/pdf", "report.pdf"},
		{"../../etc/passwd", "text/plain", "passwd"},
		{`C:\Windows\evil.bat`, "application/octet-stream", "evil.bat"},
		{"invoice\u202efdp.exe", "application/octet-stream", "invoicefdp.exe"},
		{"a\r\nb.txt", "text/plain", "ab.txt"},
		{"..", "text/plain", id + "-part3.txt"},
		{"", "text/html", id + "-part3.html"},
		{"", "message/rfc822", id + "-part3.eml"},
		{"", "x-bogus", id + "-part3.bin"},
	} {
		if got := partFilename(partmap.Part{Filename: c.name, ContentType: c.ctype}, id, 3); got != c.want {
			t.Errorf("partFilename(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if got := contentDisposition("Bob’s \"plan\";.txt"); got != `attachment; filename="Bob_s _plan__.txt"; filename*=UTF-8''Bob%E2%80%99s%20%22plan%22%3B.txt` {
		t.Errorf("contentDisposition = %s", got)
	}
}

func TestInternalErrorsAreGeneric(t *testing.T) {
	w := newWorld(t)
	w.store.failGet.Store(true)
	for _, p := range []string{"/v1/messages/" + w.idA, "/v1/messages/" + w.idA + "/raw", "/v1/messages"} {
		res := w.get(p, w.tokens["alice"])
		if res.status != 500 || string(res.body) != "{\"error\":\"internal error\"}\n" {
			t.Errorf("%s: %d %q; want 500 and the generic body", p, res.status, res.body)
		}
	}
	w.store.failGet.Store(false)
	w.logMu.Lock()
	logged := w.logs.String()
	w.logMu.Unlock()
	if !strings.Contains(logged, "disk on fire") {
		t.Errorf("the cause was not logged:\n%s", logged)
	}
	ls := w.auditLines()
	if n := len(ls); n < 3 || ls[n-1].Outcome != access.OutcomeError {
		t.Errorf("no error audit lines: %+v", ls)
	}
}

// TestTamperedMessageIsNotServed flips one ciphertext byte in the middle of
// a large message: the download breaks off without the tampered chunk.
func TestTamperedMessageIsNotServed(t *testing.T) {
	f := newFixture(t)
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20000) // 360 KB: several chunks
	raw := append(crlf("From: x@other.org\nSubject: big\n\n"), body...)
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, raw, time.Now())
	f.store.flipAt.Store(200_000)
	f.store.flipKey.Store("msg/" + id)
	req, _ := httpNewRequest(f.srv.URL+"/v1/messages/"+id+"/raw", f.tokens["alice"])
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Fatalf("read the whole tampered message (%d bytes) without an error", len(got))
	}
	if len(got) > 200_000 || !bytes.Equal(got, raw[:len(got)]) {
		t.Errorf("got %d bytes; want an authentic prefix that stops before the tampered chunk", len(got))
	}
	ls := f.waitAudit(1)
	if l := ls[len(ls)-1]; l.Outcome != access.OutcomeError || l.Bytes != int64(len(got)) && l.Bytes < int64(len(got)) {
		t.Errorf("audit %+v", l)
	}
}

// TestPartOfLargeMessageReadsOnlyItsChunks: a 1 MiB attachment inside a
// 40 MB message is served by reading about its own size from the store.
func TestPartOfLargeMessageReadsOnlyItsChunks(t *testing.T) {
	f := newFixture(t)
	attachment := make([]byte, 1<<20)
	rand.Read(attachment)
	filler := make([]byte, 14<<20)
	rand.Read(filler)
	var b bytes.Buffer
	b.Write(crlf("From: x@other.org\nTo: alice@example.com\nSubject: big one\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BIG\"\n\n--BIG\nContent-Type: text/plain\n\nsee attachments\n"))
	b.Write(crlf("--BIG\nContent-Type: application/octet-stream; name=\"filler1.bin\"\nContent-Disposition: attachment; filename=\"filler1.bin\"\nContent-Transfer-Encoding: base64\n\n"))
	b.Write(crlf(b64lines(filler)))
	b.Write(crlf("--BIG\nContent-Type: application/zip; name=\"target.zip\"\nContent-Disposition: attachment; filename=\"target.zip\"\nContent-Transfer-Encoding: base64\n\n"))
	b.Write(crlf(b64lines(attachment)))
	b.Write(crlf("--BIG\nContent-Type: application/octet-stream; name=\"filler2.bin\"\nContent-Disposition: attachment; filename=\"filler2.bin\"\nContent-Transfer-Encoding: base64\n\n"))
	line := make([]byte, 57)
	for b.Len() < 40_000_000-100 {
		rand.Read(line)
		b.WriteString(base64.StdEncoding.EncodeToString(line) + "\r\n")
	}
	b.Write(crlf("--BIG--\n"))
	raw := b.Bytes()
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, raw, time.Now())

	f.store.reset()
	res := f.get("/v1/messages/"+id+"/parts/2", f.tokens["alice"])
	read, _ := f.store.reset()
	if res.status != 200 || !bytes.Equal(res.body, attachment) {
		t.Fatalf("part 2: %d, %d bytes; want the 1 MiB attachment", res.status, len(res.body))
	}
	var m sealed.Manifest
	mres := f.get("/v1/messages/"+id, f.tokens["alice"])
	json.Unmarshal(mres.body, &m)
	encoded := m.Parts[2].Length
	info, err := f.vault.Head(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	report := fmt.Sprintf("message: %d bytes (stored sealed as %d)\nattachment: %d bytes decoded, %d bytes base64 in the message\nbytes read from the store to serve it: %d (%.2f%% of the message)\n",
		len(raw), info.Size, len(attachment), encoded, read, 100*float64(read)/float64(len(raw)))
	t.Log(report)
	writeArtifact(t, "ranged-read.txt", report)
	if len(raw) < 39e6 || len(raw) > 41e6 {
		t.Errorf("the message is %d bytes, want about 40 MB", len(raw))
	}
	// The encoded part, plus at most one chunk on either side for alignment,
	// the final chunk (Open authenticates it) and the header.
	if limit := encoded + 3*(64<<10+64); read > limit {
		t.Errorf("read %d bytes from the store for a %d-byte part; want at most %d", read, encoded, limit)
	}

	// The whole message, byte-exact.
	f.store.reset()
	res = f.get("/v1/messages/"+id+"/raw", f.tokens["alice"])
	if sha256.Sum256(res.body) != sha256.Sum256(raw) {
		t.Fatalf("raw download of %d bytes differs from the %d received", len(res.body), len(raw))
	}
}

// TestThrottleOverHTTP is issue 10 item 9: a bad token backs off (429) for
// the pair of address and token only; every valid token from the same
// address still gets in, on the API and the web form.
func TestThrottleOverHTTP(t *testing.T) {
	f := newFixture(t)
	bad := "not-a-token"
	for i := range freeFailures + 1 {
		if res := f.get("/v1/messages", bad); res.status != 401 {
			t.Fatalf("failure %d: %d", i, res.status)
		}
	}
	res := f.get("/v1/messages", bad)
	if res.status != 429 || res.header.Get("Retry-After") == "" {
		t.Fatalf("the failing token during its back-off got %d (Retry-After %q), want 429", res.status, res.header.Get("Retry-After"))
	}
	// Another bad token from the same address is not locked out by the
	// first one's failures: it gets its own count.
	if res := f.get("/v1/messages", "another-bad-token"); res.status != 401 {
		t.Errorf("another bad token: %d, want 401", res.status)
	}
	for _, user := range []string{"alice", "bob", "auditor"} {
		if res := f.get("/v1/messages", f.tokens[user]); res.status != 200 {
			t.Errorf("%s's valid token during another token's back-off: %d", user, res.status)
		}
	}
	// The web sign-in: the bad token is refused, a good one signs in.
	post := func(token string) int {
		c := *f.srv.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		pres, err := c.PostForm(f.srv.URL+"/signin", url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		pres.Body.Close()
		return pres.StatusCode
	}
	if st := post(bad); st != 429 {
		t.Errorf("web sign-in with the backing-off token: %d, want 429", st)
	}
	if st := post(f.tokens["alice"]); st != 303 {
		t.Errorf("web sign-in with a valid token: %d, want 303", st)
	}
	ls := f.auditLines()
	var throttled int
	for _, l := range ls {
		if l.Outcome == access.OutcomeThrottled {
			throttled++
		}
	}
	if throttled != 2 {
		t.Errorf("%d throttled attempts audited, want 2", throttled)
	}
}

func TestUsersReloadOverHTTP(t *testing.T) {
	f := newFixture(t)
	if res := f.get("/v1/messages", f.tokens["bob"]); res.status != 200 {
		t.Fatal(res.status)
	}
	if err := usersfile.Remove(f.usersPath, "bob"); err != nil {
		t.Fatal(err)
	}
	if res := f.get("/v1/messages", f.tokens["bob"]); res.status != 200 {
		t.Fatal("removal took effect before Reload")
	}
	if err := f.users.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := f.get("/v1/messages", f.tokens["bob"]); res.status != 401 {
		t.Fatalf("removed user: %d", res.status)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	if res := f.get("/healthz", ""); res.status != 200 {
		t.Errorf("healthz %d", res.status)
	}
	if res := f.get("/readyz", ""); res.status != 200 {
		t.Errorf("readyz %d %s", res.status, res.body)
	}
	if res := f.get("/metrics", ""); res.status != 404 {
		t.Errorf("/metrics is not ours: %d", res.status)
	}
	f.audit.Close()
	res := f.get("/readyz", "")
	if res.status != 503 || !strings.Contains(string(res.body), `"audit"`) {
		t.Errorf("readyz with a closed audit log: %d %s", res.status, res.body)
	}
	// No decryption without an audit log.
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("s", "b"), time.Now())
	if res := f.get("/v1/messages/"+id+"/raw", f.tokens["alice"]); res.status != 503 {
		t.Errorf("raw with a closed audit log: %d", res.status)
	}
}

// TestAuditChainOfAServer: every case leaves a line, and editing or
// deleting any one line makes VerifyAuditLog fail, naming a line.
func TestAuditChainOfAServer(t *testing.T) {
	w := newWorld(t)
	for _, p := range []string{"/v1/messages", "/v1/messages/" + w.idA, "/v1/messages/" + w.idA + "/raw", "/v1/messages/" + w.idA + "/parts/1", "/v1/messages/%2e%2e%2f/raw"} {
		for _, tok := range []string{w.tokens["alice"], w.tokens["bob"], w.tokens["auditor"], "", "bad"} {
			w.get(p, tok)
		}
	}
	ls := w.waitAudit(25)
	if len(ls) != 25 {
		t.Fatalf("%d audit lines for 25 requests", len(ls))
	}
	b, _ := os.ReadFile(w.auditPath)
	if n, err := auditlog.Verify(bytes.NewReader(b)); err != nil || n != 25 {
		t.Fatalf("verify = %d, %v", n, err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	lines = lines[:len(lines)-1]
	for i := range lines {
		edited := slices.Clone(lines)
		edited[i] = bytes.Replace(edited[i], []byte(`"outcome":"`), []byte(`"outcome":"x`), 1)
		var ce *auditlog.ChainError
		if _, err := auditlog.Verify(bytes.NewReader(bytes.Join(edited, nil))); !errors.As(err, &ce) || ce.Line != i+1 {
			t.Errorf("editing line %d: %v", i+1, err)
		}
		deleted := slices.Delete(slices.Clone(lines), i, i+1)
		_, err := auditlog.Verify(bytes.NewReader(bytes.Join(deleted, nil)))
		if i == len(lines)-1 {
			continue // a deleted last line leaves a shorter valid log (documented)
		}
		if !errors.As(err, &ce) || ce.Line != i+1 {
			t.Errorf("deleting line %d: %v", i+1, err)
		}
	}
	edited := bytes.Replace(b, []byte(`"user":"bob"`), []byte(`"user":"eve"`), 1)
	if _, err := auditlog.Verify(bytes.NewReader(edited)); err == nil {
		t.Error("an edited log verifies")
	}
}

func httpNewRequest(u, token string) (*http.Request, error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req, nil
}

// writeArtifact keeps a test's report under testdata/artifacts (git-ignored).
func writeArtifact(t *testing.T, name, content string) {
	t.Helper()
	dir := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
