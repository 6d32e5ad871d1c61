package smtpd

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultAllow is the client networks a listener accepts when
// Options.Allow is nil: loopback, where Postfix's scan transport connects
// from.
var DefaultAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// replyNotAuthorised is the greeting of a client outside Options.Allow. RFC
// 5321 3.1 lets a server open with 554 instead of 220; we then close at
// once rather than answer 503 to every command until QUIT.
const replyNotAuthorised = "554 5.7.1 Client address not authorised\r\n"

// clientAllowed reports whether the remote address of a connection lies in
// one of nets. An address that is not IP (a unix socket, say) is not.
func clientAllowed(nets []netip.Prefix, remote net.Addr) bool {
	var ip netip.Addr
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		ap, err := netip.ParseAddrPort(remote.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap() // an IPv4 client of a dual-stack socket is checked as IPv4
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// refuseNotAuthorised answers a connection from outside the allowed
// networks and closes it. The caller has not given it a session slot.
func refuseNotAuthorised(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, replyNotAuthorised)
	c.Close()
}

// refusalLog logs refused clients at most once per interval: a process
// that hammers the port must not flood the log. What it leaves out is
// counted and reported with the next line it writes (the metric counts
// every refusal).
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newRefusalLog(l *slog.Logger) *refusalLog {
	return &refusalLog{log: l, interval: time.Second, now: time.Now}
}

// refused logs one refused connection from remote, unless a line was
// written less than an interval ago.
func (r *refusalLog) refused(remote string) {
	r.mu.Lock()
	now := r.now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.last = now
	n := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	attrs := []any{"remote", remote}
	if n > 0 {
		attrs = append(attrs, "refused_since_last_line", n)
	}
	r.log.Info("SMTP client not in smtp.allow, refused", attrs...)
}
