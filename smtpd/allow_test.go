package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/internal/testkit"
)

// dialFrom connects to addr from the loopback address local (Linux routes
// all of 127/8 to lo, so any of them can be a client's address).
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// TestAllow: with smtp.allow ["127.0.0.2/32"], a client at 127.0.0.2 is
// greeted and delivers; one at 127.0.0.3 is answered 554 5.7.1 and
// disconnected, nothing of what it sends is archived, and the refusal is
// counted and logged.
func TestAllow(t *testing.T) {
	e := newEnv(t, envOpts{storeOnly: true})
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	log := slog.New(slog.NewTextHandler(testkit.LockedWriter{Mu: e.logMu, W: e.logs}, nil))
	srv := New(Options{Hostname: "mailvault.test", MaxMessageBytes: 1 << 20, MaxRecipients: 10, MaxSessions: 5,
		MaxLineLength: 4096, ReadTimeout: time.Minute, WriteTimeout: time.Minute, DataTimeout: time.Minute,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}},
		&Pipeline{Vault: e.vault, Keys: e.keys, Logger: log, Metrics: metrics})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	addr := l.Addr().String()

	// The allowed client: a whole delivery.
	c := smtp.NewClient(dialFrom(t, "127.0.0.2", addr))
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("127.0.0.2 was not greeted: %v", err)
	}
	id := streamMessage(t, c, "a@example.test", strings.NewReader("Subject: allowed\r\n\r\nhi\r\n"))
	c.Quit()
	if id == "" {
		t.Fatal("the allowed client's message has no archive id")
	}
	if got := e.open(t, id); string(got) != "Subject: allowed\r\n\r\nhi\r\n" {
		t.Errorf("archived %q", got)
	}

	// The refused client pipelines a whole transaction: it gets the 554
	// greeting and the end of the connection, nothing else.
	conn := dialFrom(t, "127.0.0.3", addr)
	defer conn.Close()
	io.WriteString(conn, "EHLO x.test\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nSubject: planted\r\n\r\nx\r\n.\r\nQUIT\r\n")
	all, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil && !isReset(err) {
		t.Fatalf("reading the refusal: %v", err)
	}
	if string(all) != "554 5.7.1 Client address not authorised\r\n" {
		t.Errorf("127.0.0.3 got %q, want the 554 greeting alone", all)
	}
	if ids := e.archivedIDs(t); len(ids) != 1 {
		t.Errorf("archive holds %d messages, want only the allowed client's", len(ids))
	}
	if n := counterValue(t, reg, "mailvaultd_smtp_connections_refused_total", "not_authorised"); n != 1 {
		t.Errorf("mailvaultd_smtp_connections_refused_total{reason=not_authorised} = %v, want 1", n)
	}
	e.logMu.Lock()
	logged := e.logs.String()
	e.logMu.Unlock()
	if !strings.Contains(logged, "not in smtp.allow") || !strings.Contains(logged, "remote=127.0.0.3:") {
		t.Errorf("the refusal is not logged with the remote address:\n%s", logged)
	}
}

// TestAllowDefaultIsLoopback: a server given no Allow list takes loopback
// clients and no one else.
func TestAllowDefaultIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:1", true}, {"127.255.0.9:1", true}, {"[::1]:1", true}, {"[::ffff:127.0.0.1]:1", true},
		{"10.0.0.1:1", false}, {"[::2]:1", false}, {"[::ffff:10.0.0.1]:1", false}, {"192.168.1.1:1", false},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := clientAllowed(DefaultAllow, net.TCPAddrFromAddrPort(ap)); got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.addr, got, tc.want)
		}
	}
	if New(Options{}, &Pipeline{Logger: slog.New(slog.DiscardHandler)}).allow == nil {
		t.Error("a server without Options.Allow has no allow list")
	}
}

// TestRefusalLogIsRateLimited: a flood of refused connections writes one
// line per interval, and the next line says how many it left out.
func TestRefusalLogIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)))
	r.now = func() time.Time { return now }
	for range 1000 {
		r.refused("10.0.0.1:1234")
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("1000 refusals within one interval wrote %d lines, want 1:\n%s", n, buf.String())
	}
	now = now.Add(r.interval)
	r.refused("10.0.0.2:1234")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "refused_since_last_line=999") || !strings.Contains(lines[1], "remote=10.0.0.2:1234") {
		t.Errorf("after the interval, got lines %q; want a second line naming 10.0.0.2 and the 999 left out", lines)
	}
}

// counterValue gathers reg and returns the counter name{reason=reason}.
func counterValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
