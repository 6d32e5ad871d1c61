package retrieval

import (
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mailvault/mailvaultd/access"
)

// Server timeouts. Downloads are not bounded by WriteTimeout: the streaming
// handlers move the write deadline forward for every chunk they send (a
// client that stalls for streamWriteStall is dropped) up to streamMaxDuration
// in all.
const (
	serverReadHeaderTimeout = 10 * time.Second
	serverReadTimeout       = 30 * time.Second
	serverWriteTimeout      = 60 * time.Second
	serverIdleTimeout       = 120 * time.Second
	serverMaxHeaderBytes    = 32 << 10

	// requestTimeout bounds the work of a request that is not a download
	// (list, manifest, the web page).
	requestTimeout = 30 * time.Second
	// streamWriteStall is how long one write of a download may block.
	streamWriteStall = 60 * time.Second
	// streamMaxDuration bounds a whole download.
	streamMaxDuration = time.Hour
)

// NewServer returns an http.Server for h on addr with the timeouts and the
// header limit the retrieval API is designed for.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes,
	}
}

// Back-off on failed sign-ins (a bad token on the API or the web form), per
// pair of remote IP address and token: the first freeFailures failures of a
// pair are free; after that each further failure doubles the time during
// which that pair is refused (429, Retry-After), from backoffBase up to
// backoffMax. A valid token is checked first and never refused, so a bad
// token sent from a shared address (a proxy, loopback) locks out nobody
// else. (Guessing is no threat to 256-bit tokens; the back-off keeps a
// client that repeats a bad token from costing a hash and an audit line per
// try.) A pair forgotten for backoffForget is cleared.
const (
	freeFailures  = 5
	backoffBase   = time.Second
	backoffMax    = 15 * time.Minute
	backoffForget = time.Hour
	// maxTracked bounds the table; when it is full, expired entries go, and
	// if none has expired the newest address is tracked in place of the
	// stalest.
	maxTracked = 100_000
)

type failures struct {
	count int
	until time.Time // refused before this
	last  time.Time
}

// signInThrottle tracks failed sign-ins by key (failureKey: address and
// token).
type signInThrottle struct {
	free int // failures before the back-off starts
	mu   sync.Mutex
	m    map[string]*failures
	now  func() time.Time
}

func newSignInThrottle() *signInThrottle {
	return &signInThrottle{free: freeFailures, m: make(map[string]*failures), now: time.Now}
}

// wait returns how long addr must wait before it may try again (0: now).
func (t *signInThrottle) wait(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[addr]
	if f == nil {
		return 0
	}
	now := t.now()
	if now.Sub(f.last) > backoffForget {
		delete(t.m, addr)
		return 0
	}
	if d := f.until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// fail counts a failure of addr.
func (t *signInThrottle) fail(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.m[addr]
	if f == nil {
		if len(t.m) >= maxTracked {
			t.evict(now)
		}
		f = &failures{}
		t.m[addr] = f
	}
	f.count++
	f.last = now
	if f.count > t.free {
		d := backoffBase << min(f.count-t.free-1, 20)
		f.until = now.Add(min(d, backoffMax))
	}
}

func (t *signInThrottle) evict(now time.Time) {
	var stalest string
	var stalestAt time.Time
	for k, f := range t.m {
		if now.Sub(f.last) > backoffForget {
			delete(t.m, k)
			continue
		}
		if stalest == "" || f.last.Before(stalestAt) {
			stalest, stalestAt = k, f.last
		}
	}
	if len(t.m) >= maxTracked {
		delete(t.m, stalest)
	}
}

// remoteIP is the address failures are counted by: the peer's IP. Headers
// such as X-Forwarded-For are not trusted.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Unauthenticated denials (no or a bad token, a forged cookie, a malformed
// path from nobody) cost nothing to send, and each used to be one fsynced
// audit line: 20,000 requests added 6 MB and could fill the disk, which then
// stops every read. So per source address the first denialsPerSource in a
// denialWindow are recorded one by one, and at most denialsPerWindow from all
// addresses together; the rest are counted and recorded as one
// ActionDenials line per address at the end of the window ("N more from
// ADDR"). New addresses once the window's denialsPerWindow lines are used
// up, or beyond maxDenialSources, share one aggregate under the address
// "*", so a window has at most denialsPerWindow + min(denialsPerWindow,
// maxDenialSources) + 1 lines of denials. Denials of an authenticated user are always recorded.
const (
	denialWindow     = time.Minute
	denialsPerSource = 10
	denialsPerWindow = 1000
	maxDenialSources = 10_000
	// overflowSource is the address of the denials from the sources beyond
	// maxDenialSources.
	overflowSource = "*"
)

// denialLimiter decides which unauthenticated denials are recorded on their
// own and writes the aggregate lines for the others.
type denialLimiter struct {
	write     func(access.Event) // records an aggregate line
	now       func() time.Time
	perSource int // denialsPerSource
	perWindow int // denialsPerWindow

	mu          sync.Mutex
	windowStart time.Time
	total       int // lines recorded on their own in this window
	sources     map[string]*denialSource
	timer       *time.Timer // flushes the window's aggregates at its end
}

type denialSource struct {
	recorded   int
	suppressed int64
}

func newDenialLimiter(write func(access.Event)) *denialLimiter {
	return &denialLimiter{write: write, now: time.Now, perSource: denialsPerSource, perWindow: denialsPerWindow, sources: make(map[string]*denialSource)}
}

// admit reports whether the denial ev is to be recorded on its own; if not,
// it is counted for its address's aggregate line.
func (l *denialLimiter) admit(ev access.Event) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.windowStart) >= denialWindow {
		l.flushLocked(now)
	}
	addr := ev.Remote
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	s := l.sources[addr]
	if s == nil && (len(l.sources) >= maxDenialSources || l.total >= l.perWindow) {
		// A new address once the window's lines are used up has nothing
		// of its own to aggregate: it shares one line with the others.
		addr = overflowSource
		s = l.sources[addr]
	}
	if s == nil {
		s = &denialSource{}
		l.sources[addr] = s
	}
	if addr != overflowSource && s.recorded < l.perSource && l.total < l.perWindow {
		s.recorded++
		l.total++
		return true
	}
	s.suppressed++
	if l.timer == nil {
		l.timer = time.AfterFunc(l.windowStart.Add(denialWindow).Sub(now), l.flush)
	}
	return false
}

// flush writes the aggregate lines of the window and starts a new one.
func (l *denialLimiter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked(l.now())
}

func (l *denialLimiter) flushLocked(now time.Time) {
	addrs := make([]string, 0, len(l.sources))
	for addr, s := range l.sources {
		if s.suppressed > 0 {
			addrs = append(addrs, addr)
		}
	}
	slices.Sort(addrs)
	for _, addr := range addrs {
		l.write(access.Event{Time: now, Action: access.ActionDenials, Remote: addr,
			Outcome: access.OutcomeUnauthenticated, Count: l.sources[addr].suppressed})
	}
	clear(l.sources)
	l.total = 0
	l.windowStart = now
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}
