package retrieval

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/export"
	"github.com/mailvault/mailvaultd/restore"
)

// depositExportSet archives messages for alice (some with lines an mbox
// must quote, one with bare LFs) and one for bob, and returns alice's raw
// bytes by id.
func depositExportSet(f *fixture) map[string][]byte {
	at := time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)
	raws := [][]byte{
		simpleMail("plain", "hello"),
		crlf("From: x@other.org\nSubject: quoting\n\nFrom the desk of\n>From before\n>>From deep\nFrom\n"),
		[]byte("Subject: bare\n\nFrom bare LF\n"),
	}
	want := map[string][]byte{}
	for i, raw := range raws {
		id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, raw, at.Add(time.Duration(i)*time.Minute))
		want[id] = raw
	}
	f.deposit(archive.Envelope{From: "x@other.org", To: []string{"bob@example.com"}}, simpleMail("bob's", "secret"), at)
	return want
}

// TestExportOverHTTP: alice's export holds exactly her messages, each byte
// for byte as archived once the mbox is unquoted or the zip unpacked, with
// one audit record per message that holds the query; bob's is not in it.
func TestExportOverHTTP(t *testing.T) {
	f, sl := newSearchFixture(t)
	want := depositExportSet(f)
	for _, format := range []string{"mbox", "zip"} {
		t.Run(format, func(t *testing.T) {
			before := len(f.auditLines())
			res := f.get("/v1/export?format="+format+"&q="+url.QueryEscape("from:x@other.org"), f.tokens["alice"])
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			got := map[string][]byte{}
			switch format {
			case "mbox":
				var ids []string
				// The mbox carries no ids: match the messages by content.
				err := export.ReadMbox(bytes.NewReader(res.body), func(fromLine string, raw []byte) error {
					if !strings.HasPrefix(fromLine, "From x@other.org ") {
						t.Errorf("From_ line %q", fromLine)
					}
					for id, w := range want {
						if bytes.Equal(w, raw) {
							got[id] = raw
							ids = append(ids, id)
						}
					}
					if len(ids) != len(got) {
						t.Errorf("message %q is none of alice's", raw)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			case "zip":
				zr, err := zip.NewReader(bytes.NewReader(res.body), int64(len(res.body)))
				if err != nil {
					t.Fatal(err)
				}
				for _, zf := range zr.File {
					rc, err := zf.Open()
					if err != nil {
						t.Fatal(err)
					}
					b, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
					got[strings.TrimSuffix(zf.Name, ".eml")] = b
				}
			}
			if len(got) != len(want) {
				t.Fatalf("export holds %d of alice's messages, want %d", len(got), len(want))
			}
			for id, w := range want {
				if !bytes.Equal(got[id], w) {
					t.Errorf("%s = %q, want %q", id, got[id], w)
				}
			}
			if strings.Contains(string(res.body), "bob's") {
				t.Error("bob's message is in alice's export")
			}
			ls := f.waitAudit(before + len(want))[before:]
			if len(ls) != len(want) {
				t.Fatalf("%d audit lines, want one per message (%d)", len(ls), len(want))
			}
			for _, l := range ls {
				if l.Action != access.ActionExport || l.User != "alice" || l.Outcome != access.OutcomeOK ||
					l.Query != "from:x@other.org" || l.Bytes != int64(len(want[l.MessageID])) {
					t.Errorf("audit line %+v", l.Event)
				}
			}
			if qs := sl.queries(); qs[len(qs)-1].Q != "from:x@other.org" {
				t.Errorf("lister saw %+v", qs[len(qs)-1])
			}
		})
	}
}

// TestExportRefusals: a bad format, a bad query, no catalog and an export
// past the cap are refused before anything is streamed.
func TestExportRefusals(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) {
		o.Lister = &searchLister{inner: o.Lister}
		o.MaxExportMessages = 2
	})
	depositExportSet(f)
	for _, tc := range []struct {
		target string
		status int
		text   string
	}{
		{"/v1/export?format=tar", http.StatusBadRequest, "format"},
		{"/v1/export?q=bad", http.StatusBadRequest, "unexpected end"},
		{"/v1/export?q=nosearch", http.StatusNotImplemented, "search is not available"},
		{"/v1/export?q=x", http.StatusRequestEntityTooLarge, "more than 2"},
		{"/v1/export?mailbox=bob@example.com", http.StatusForbidden, "mailbox"},
	} {
		res := f.get(tc.target, f.tokens["alice"])
		if res.status != tc.status || !strings.Contains(string(res.body), tc.text) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.target, res.status, res.body, tc.status, tc.text)
		}
	}
}

// recordingRestorer stands in for restore.Sender.
type recordingRestorer struct {
	mu    sync.Mutex
	calls []string
	reply restore.Reply
}

func (r *recordingRestorer) Restore(ctx context.Context, id, to string) (restore.Reply, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, id+" "+to)
	return r.reply, nil
}

func (f *fixture) post(path, token, contentType, body string, header map[string]string) response {
	f.t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

// TestRestoreRules: a reader restores only to their own mailboxes (the
// first by default) and only their own messages; an auditor names any
// address; a foreign origin and a form body are refused; every restore is
// audited with its address.
func TestRestoreRules(t *testing.T) {
	rr := &recordingRestorer{reply: restore.Reply{Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as X"}}
	f := newFixtureWith(t, func(o *Options) { o.Restorer = rr })
	at := time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)
	bobs := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"bob+news@example.com"}}, simpleMail("b", "b"), at)
	alices := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("a", "a"), at)
	const js = "application/json"
	for _, tc := range []struct {
		name, user, id, ctype, body string
		header                      map[string]string
		status                      int
		call                        string // what the restorer got, "" for nothing
	}{
		{"default mailbox", "bob", bobs, "", "", nil, 200, bobs + " bob@example.com"},
		{"own other mailbox", "bob", bobs, js, `{"to":"Bob+News@example.com"}`, nil, 200, bobs + " bob+news@example.com"},
		{"someone else's", "bob", bobs, js, `{"to":"alice@example.com"}`, nil, 403, ""},
		{"not readable", "bob", alices, "", "", nil, 404, ""},
		{"auditor anywhere", "auditor", alices, js, `{"to":"legal@example.net"}`, nil, 200, alices + " legal@example.net"},
		{"auditor must name", "auditor", alices, "", "", nil, 400, ""},
		{"form body", "bob", bobs, "application/x-www-form-urlencoded", "to=bob@example.com", nil, 400, ""},
		{"foreign origin", "bob", bobs, "", "", map[string]string{"Origin": "https://evil.example"}, 403, ""},
		{"no token", "", bobs, "", "", nil, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr.mu.Lock()
			n := len(rr.calls)
			rr.mu.Unlock()
			res := f.post("/v1/messages/"+tc.id+"/restore", f.tokens[tc.user], tc.ctype, tc.body, tc.header)
			if res.status != tc.status {
				t.Fatalf("status %d (%s), want %d", res.status, res.body, tc.status)
			}
			rr.mu.Lock()
			calls := rr.calls[n:]
			rr.mu.Unlock()
			if (tc.call == "") != (len(calls) == 0) || (tc.call != "" && calls[0] != tc.call) {
				t.Errorf("restorer got %q, want %q", calls, tc.call)
			}
			if tc.status == 200 && !strings.Contains(string(res.body), `"code":250`) {
				t.Errorf("body %s lacks the reply", res.body)
			}
		})
	}
	var restored int
	for _, l := range f.waitAudit(1) {
		if l.Action == access.ActionRestore && l.Outcome == access.OutcomeOK {
			restored++
			if l.To == "" || l.MessageID == "" {
				t.Errorf("restore audit line %+v lacks the address or id", l.Event)
			}
		}
	}
	if restored != 3 {
		t.Errorf("%d ok restore audit lines, want 3", restored)
	}
}

// TestRestoreStoreOnly: without a next hop a restore answers 501.
func TestRestoreStoreOnly(t *testing.T) {
	f := newFixture(t)
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("a", "a"), time.Now())
	res := f.post("/v1/messages/"+id+"/restore", f.tokens["alice"], "", "", nil)
	if res.status != http.StatusNotImplemented || !strings.Contains(string(res.body), "store-only") {
		t.Errorf("%d %s, want 501 saying store-only", res.status, res.body)
	}
}
