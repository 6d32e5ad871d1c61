package retrieval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
)

// plantedMail is what any outside sender can make the archive hold: parts
// attachments, each named by a filename of nameLen '<' characters (which
// JSON escapes to six bytes each and HTML to four). seq makes each copy a
// message of its own.
func plantedMail(seq, parts, nameLen int) []byte {
	name := strings.Repeat("<", nameLen)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: planter@evil.test\r\nTo: alice@example.com\r\nSubject: planted %d\r\nMessage-ID: <%d@evil.test>\r\n", seq, seq)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
	for range parts {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\nx\r\n", name)
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

// plant archives n planted messages to alice and returns their ids, newest
// first (the listing's order).
func (f *fixture) plant(n int) []string {
	base := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]string, n)
	for i := range n {
		ids[n-1-i] = f.deposit(archive.Envelope{From: "planter@evil.test", To: []string{"alice@example.com"}},
			plantedMail(i, 1000, 1000), base.Add(time.Duration(i)*time.Second))
	}
	return ids
}

// heapPeak runs fn and returns how far the process's peak resident memory
// (VmHWM, the figure the issue measured) rose above what it held before fn.
// The peak is reset first through /proc/self/clear_refs, so this is a
// high-water mark taken by the kernel, not a sample.
func heapPeak(t *testing.T, fn func()) uint64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	before := procStatus(t, "VmRSS")
	fn()
	peak := procStatus(t, "VmHWM")
	if peak < before {
		return 0
	}
	return peak - before
}

// procStatus returns a field of /proc/self/status in bytes.
func procStatus(t *testing.T, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestPlantedListIsBounded is issue 10 item 1: 60 messages of 1.1 MB, each
// with 1,000 attachments named by 1,000 '<', listed 200 at a time. Before
// the fix one list answered 369 MB and the daemon's memory grew by more than
// a gigabyte; now a list entry carries at most listPartsShown parts with
// names cut to listNameBytes, the response streams and is capped, and the
// web pages show bounded part lists.
func TestPlantedListIsBounded(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) { o.MaxPageSize = 200 })
	planted := 60
	if raceEnabled {
		planted = 12
	}
	ids := f.plant(planted)
	const memBound = 100 << 20

	var n int64
	var body bytes.Buffer
	var status int
	grew := heapPeak(t, func() {
		req, _ := httpNewRequest(f.srv.URL+"/v1/messages?limit=200", f.tokens["auditor"])
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		status = res.StatusCode
		// Keep what a bounded response can hold, count the rest.
		n, _ = io.Copy(&limitedBuffer{b: &body, max: 2 * DefaultMaxListBytes}, res.Body)
	})
	if status != 200 {
		t.Fatalf("list: %d %.200s", status, body.Bytes())
	}
	t.Logf("list of %d planted messages: %d bytes; peak RSS grew by %d MiB", len(ids), n, grew>>20)
	if n > DefaultMaxListBytes+64<<10 {
		t.Errorf("list answered %d bytes, more than the cap %d", n, DefaultMaxListBytes)
	}
	if grew > memBound && !raceEnabled {
		t.Errorf("one list request grew the peak RSS by %d MiB, more than %d MiB", grew>>20, memBound>>20)
	}
	var lr struct {
		Messages []struct {
			ID             string                      `json:"id"`
			Parts          []struct{ Filename string } `json:"parts"`
			PartsTotal     int                         `json:"parts_total"`
			PartsTruncated bool                        `json:"parts_truncated"`
		} `json:"messages"`
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body.Bytes(), &lr); err != nil {
		t.Fatalf("list body: %v", err)
	}
	if len(lr.Messages) == 0 || lr.Messages[0].ID != ids[0] {
		t.Fatalf("listed %d messages, first %v", len(lr.Messages), lr.Messages)
	}
	for _, m := range lr.Messages {
		if len(m.Parts) != listPartsShown || m.PartsTotal != 1000 || !m.PartsTruncated {
			t.Fatalf("%s: %d parts shown, parts_total %d, truncated %v; want %d, 1000, true", m.ID, len(m.Parts), m.PartsTotal, m.PartsTruncated, listPartsShown)
		}
		for _, p := range m.Parts {
			if len(p.Filename) > listNameBytes || !strings.HasPrefix(p.Filename, "<<<") {
				t.Fatalf("%s: filename of %d bytes listed", m.ID, len(p.Filename))
			}
		}
	}

	// The web list and one message's page.
	cookie := f.signIn("auditor")
	var page []byte
	grew = heapPeak(t, func() { page = f.getCookie("/?limit=200", cookie) })
	t.Logf("web list: %d bytes; peak RSS grew by %d MiB", len(page), grew>>20)
	if len(page) > DefaultMaxListBytes || (grew > memBound && !raceEnabled) {
		t.Errorf("web list: %d bytes, peak RSS grew by %d MiB", len(page), grew>>20)
	}
	if got := strings.Count(string(page), `class="attachment"`); got > listPartsShown*len(ids) || got == 0 {
		t.Errorf("web list shows %d attachment links", got)
	}
	page = f.getCookie("/messages/"+ids[0], cookie)
	if got := strings.Count(string(page), `class="part"`); got != webPartsShown {
		t.Errorf("message page shows %d parts, want %d", got, webPartsShown)
	}
	if !strings.Contains(string(page), `href="/v1/messages/`+ids[0]+`"`) {
		t.Errorf("message page does not link to the manifest for the rest of the parts")
	}
	if len(page) > 1<<20 {
		t.Errorf("message page of %d bytes", len(page))
	}
}

// TestListByteCapPages: a page whose entries would pass the byte cap ends
// early with a cursor, and paging on lists every message once.
func TestListByteCapPages(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) { o.MaxListBytes = 100 << 10 })
	ids := f.plant(12)
	var got []string
	cursor := ""
	pages := 0
	for range 20 {
		res := f.get("/v1/messages?limit=100&cursor="+url.QueryEscape(cursor), f.tokens["alice"])
		if res.status != 200 {
			t.Fatalf("%d %.200s", res.status, res.body)
		}
		if len(res.body) > 100<<10+64<<10 {
			t.Errorf("page of %d bytes passes the cap", len(res.body))
		}
		var lr listResponse
		if err := json.Unmarshal(res.body, &lr); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range lr.Messages {
			got = append(got, m.ID)
		}
		if cursor = lr.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("paged through %v, want %v", got, ids)
	}
	if pages < 2 {
		t.Errorf("%d pages: the cap did not cut the page", pages)
	}
}

// limitedBuffer keeps the first max bytes written and counts all of them.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// signIn signs user in on the web page and returns the session cookie.
func (f *fixture) signIn(user string) *http.Cookie {
	f.t.Helper()
	c := *f.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.PostForm(f.srv.URL+"/signin", url.Values{"token": {f.tokens[user]}})
	if err != nil {
		f.t.Fatal(err)
	}
	res.Body.Close()
	for _, ck := range res.Cookies() {
		if ck.Name == sessionCookie {
			return ck
		}
	}
	f.t.Fatalf("sign-in of %s: %d, no session cookie", user, res.StatusCode)
	return nil
}

// getCookie requests path with a session cookie and returns the body.
func (f *fixture) getCookie(path string, c *http.Cookie) []byte {
	f.t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.AddCookie(c)
	res, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		f.t.Fatalf("GET %s: %d %.200s", path, res.StatusCode, b)
	}
	return b
}
