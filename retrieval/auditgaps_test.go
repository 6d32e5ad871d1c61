package retrieval

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
)

// do sends one request byte for byte (method, target and header lines as
// given) and returns the answer.
func (f *fixture) do(method, target string, header ...string) response {
	f.t.Helper()
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: " + f.srv.Listener.Addr().String() + "\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		f.t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		f.t.Fatalf("%s %.80s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

// TestAuditGaps is issue 10 item 11: every one of these requests leaves
// exactly one audit line, and unclean paths are 400 (not the outer mux's
// 307) with /metrics served by the handler itself.
func TestAuditGaps(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "mv_up 1\n") })
	f := newFixtureWith(t, func(o *Options) { o.Metrics = metrics })
	id := f.deposit(archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}, simpleMail("hi", "body"), time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC))
	// Every denial on its own: the bound has its own test.
	f.srv.Config.Handler.(*handler).denials.perSource = 1 << 20
	alice := "Authorization: Bearer " + f.tokens["alice"]
	badBearer := "Authorization: Bearer not-a-token"
	forged := "Cookie: " + sessionCookie + "=forgedforgedforgedforgedforgedforgedforged12"
	for _, c := range []struct {
		name           string
		method, target string
		header         []string
		status         int
		action, user   string
		outcome        string
	}{
		{"bad bearer on /", "GET", "/", []string{badBearer}, 200, access.ActionList, "", access.OutcomeUnauthenticated},
		{"forged cookie on /", "GET", "/", []string{forged}, 200, access.ActionList, "", access.OutcomeUnauthenticated},
		{"bad bearer on a message page", "GET", "/messages/" + id, []string{badBearer}, 303, access.ActionView, "", access.OutcomeUnauthenticated},
		{"forged cookie on a message page", "GET", "/messages/" + id, []string{forged}, 303, access.ActionView, "", access.OutcomeUnauthenticated},
		{"forged cookie on the API", "GET", "/v1/messages/" + id, []string{forged}, 401, access.ActionManifest, "", access.OutcomeUnauthenticated},
		{"HEAD on the API", "HEAD", "/v1/messages/" + id + "/raw", []string{alice}, 405, actionRequest, "alice", access.OutcomeBadRequest},
		{"HEAD on the API, no token", "HEAD", "/v1/messages", nil, 405, actionRequest, "", access.OutcomeBadRequest},
		{"HEAD on a message page", "HEAD", "/messages/" + id, []string{alice}, 405, actionRequest, "alice", access.OutcomeBadRequest},
		{"doubled slash before v1", "GET", "//v1/messages", []string{alice}, 400, actionRequest, "alice", access.OutcomeBadRequest},
		{"doubled slash before v1, bad token", "GET", "//v1/messages", []string{badBearer}, 400, actionRequest, "", access.OutcomeUnauthenticated},
		{"//", "GET", "//", nil, 400, actionRequest, "", access.OutcomeBadRequest},
		{"/./", "GET", "/./", nil, 400, actionRequest, "", access.OutcomeBadRequest},
		{"/../", "GET", "/../", nil, 400, actionRequest, "", access.OutcomeBadRequest},
		{"/v1/../metrics", "GET", "/v1/../metrics", nil, 400, actionRequest, "", access.OutcomeBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.auditLines())
			res := f.do(c.method, c.target, c.header...)
			if res.status != c.status {
				t.Errorf("%s %s: %d, want %d", c.method, c.target, res.status, c.status)
			}
			ls := f.waitAudit(before + 1)
			if len(ls) != before+1 {
				t.Fatalf("%d audit lines for one request", len(ls)-before)
			}
			l := ls[len(ls)-1]
			if l.Action != c.action || l.User != c.user || l.Outcome != c.outcome || l.Bytes != 0 {
				t.Errorf("audit line %+v; want action %s, user %q, outcome %s, no bytes", l.Event, c.action, c.user, c.outcome)
			}
		})
	}
	if res := f.do("GET", "/metrics"); res.status != 200 || !strings.Contains(string(res.body), "mv_up") {
		t.Errorf("GET /metrics: %d %q", res.status, res.body)
	}
	// A visit without credentials is the sign-in form, not a denial.
	before := len(f.auditLines())
	if res := f.do("GET", "/"); res.status != 200 {
		t.Errorf("GET /: %d", res.status)
	}
	if n := len(f.auditLines()); n != before {
		t.Errorf("a plain visit to / left %d audit lines", n-before)
	}
}
