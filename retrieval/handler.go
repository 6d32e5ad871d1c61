package retrieval

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/export"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/sealer"
)

// Page sizes of the listing.
const (
	// DefaultMaxPageSize is the largest page when Options.MaxPageSize is 0.
	DefaultMaxPageSize = 200
	// defaultPageSize is the page size when the request names none.
	defaultPageSize = 50
	// DefaultMaxListBytes caps one list response when Options.MaxListBytes
	// is 0.
	DefaultMaxListBytes = 4 << 20
	// listPartsShown and listNameBytes are the parts a list entry shows
	// and the bytes of each one's name (listing.Summarize).
	listPartsShown = listing.MaxParts
	listNameBytes  = listing.MaxNameBytes
	// webPartsShown is how many parts the web page of one message lists;
	// the manifest (GET /v1/messages/{id}) has them all.
	webPartsShown = 100
)

// Lister makes one page of a listing (archivelist over the archive's index;
// later the catalog). retrieval checks each message on it against the caller.
type Lister interface {
	List(ctx context.Context, q listing.Query) (listing.Page, error)
}

// Users authenticates a caller by the SHA-256 of the token they presented
// (usersfile; later a database). It compares in constant time.
type Users interface {
	Authenticate(h access.TokenHash) (access.Principal, bool)
}

// Audit records one access (auditlog; later a database). Record's error says
// that the event was not recorded; Err says that no event can be (the
// handler then decrypts nothing).
type Audit interface {
	Record(e access.Event) error
	Err() error
}

// Options configures NewHandler. Vault, Keys, Lister, Users and Audit are
// required.
type Options struct {
	Vault  *archive.Vault // reading messages
	Keys   sealer.KeyProvider
	Lister Lister
	Users  Users
	Audit  Audit
	Logger *slog.Logger
	// Ready, if set, is an extra readiness check for /readyz, named
	// ReadyName (default "ready") in the list of failing components.
	Ready     func(ctx context.Context) error
	ReadyName string
	// MaxPageSize caps the limit of a listing (DefaultMaxPageSize if 0);
	// a larger limit is lowered to it.
	MaxPageSize int
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-Proto: https is believed, making the session cookie
	// Secure (config retrieval.trusted_proxies). From any other peer the
	// header is ignored.
	TrustedProxies []netip.Prefix
	// Metrics, if set, is served at GET /metrics, after the path checks:
	// mounting the handler beside it on an outer http.ServeMux would let
	// that mux redirect (307) the paths this handler answers 400.
	Metrics http.Handler
	// MaxListBytes caps the JSON one list response carries
	// (DefaultMaxListBytes if 0); see apiList.
	MaxListBytes int
	// MaxExportMessages caps the messages of one export
	// (export.MaxMessages if 0); a larger export is refused with 413.
	MaxExportMessages int
	// Restorer, if set, re-sends archived messages (POST
	// /v1/messages/{id}/restore); without it restore answers 501.
	Restorer Restorer
}

// handler serves the API and the web page.
type handler struct {
	vault     *archive.Vault
	keys      sealer.KeyProvider
	lister    Lister
	users     Users
	audit     Audit
	log       *slog.Logger
	ready     func(ctx context.Context) error
	readyName string
	maxPage   int
	maxList   int
	maxExport int
	restorer  Restorer
	metrics   http.Handler
	proxies   []netip.Prefix
	mux       *http.ServeMux
	throttle  *signInThrottle
	denials   *denialLimiter
	sessions  *sessionStore
	pages     *template.Template
	now       func() time.Time
}

// NewHandler returns the HTTP handler of the retrieval service. It serves
//
//	GET  /v1/messages                  list (JSON)
//	GET  /v1/messages/{id}             manifest (JSON)
//	GET  /v1/messages/{id}/raw         the message as received (message/rfc822)
//	GET  /v1/messages/{id}/parts/{n}   part n, transfer-decoded
//	POST /v1/messages/{id}/restore     re-send the message to a mailbox (JSON)
//	GET  /v1/export                    the listing's messages as mbox or zip
//	GET  /healthz, /readyz             liveness, readiness
//	GET  /                             web page: sign-in form or message list
//	GET  /messages/{id}                web page: one message
//	POST /signin, /signout             web page: session
//	POST /messages/{id}/restore        web page: the restore button
//	GET  /static/                      web page: style sheet
//
// and answers 404 for every other path, so it can be mounted as "/" beside,
// for example, "/metrics" on an outer mux.
func NewHandler(o Options) http.Handler {
	if o.Vault == nil || o.Keys == nil || o.Lister == nil || o.Users == nil || o.Audit == nil {
		panic("retrieval: NewHandler needs Vault, Keys, Lister, Users and Audit")
	}
	h := &handler{
		vault:     o.Vault,
		keys:      o.Keys,
		lister:    o.Lister,
		users:     o.Users,
		audit:     o.Audit,
		log:       o.Logger,
		ready:     o.Ready,
		readyName: cmp.Or(o.ReadyName, "ready"),
		maxPage:   o.MaxPageSize,
		maxList:   o.MaxListBytes,
		maxExport: o.MaxExportMessages,
		restorer:  o.Restorer,
		metrics:   o.Metrics,
		proxies:   o.TrustedProxies,
		mux:       http.NewServeMux(),
		throttle:  newSignInThrottle(),
		sessions:  newSessionStore(),
		pages:     parsePages(),
		now:       time.Now,
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.denials = newDenialLimiter(h.write)
	if h.maxPage <= 0 {
		h.maxPage = DefaultMaxPageSize
	}
	if h.maxExport <= 0 {
		h.maxExport = export.MaxMessages
	}
	if h.maxList <= 0 {
		h.maxList = DefaultMaxListBytes
	}
	m := h.mux
	m.HandleFunc("GET /v1/messages", h.apiList)
	m.HandleFunc("GET /v1/messages/{id}", h.apiManifest)
	m.HandleFunc("GET /v1/messages/{id}/raw", h.apiRaw)
	m.HandleFunc("GET /v1/messages/{id}/parts/{n}", h.apiPart)
	m.HandleFunc("POST /v1/messages/{id}/restore", h.apiRestore)
	m.HandleFunc("GET /v1/export", h.apiExport)
	m.HandleFunc("GET /healthz", h.healthz)
	m.HandleFunc("GET /readyz", h.readyz)
	m.HandleFunc("GET /{$}", h.webIndex)
	m.HandleFunc("GET /messages/{id}", h.webMessage)
	m.HandleFunc("POST /signin", h.webSignIn)
	m.HandleFunc("POST /signout", h.webSignOut)
	m.HandleFunc("POST /messages/{id}/restore", h.webRestore)
	m.Handle("GET /static/", staticHandler())
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v) // a deliberate abort: net/http drops the connection
		}
		h.log.Error("retrieval: panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
		if sw.wrote {
			panic(http.ErrAbortHandler)
		}
		writeError(sw, http.StatusInternalServerError, "internal error")
	}()
	// A path with dot segments, doubled or encoded slashes never reaches the
	// router (which would redirect it elsewhere): it is a bad request.
	if p := r.URL.Path; p == "" || p[0] != '/' || strings.Contains(p, "//") || (path.Clean(p) != p && path.Clean(p)+"/" != p) ||
		strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") || strings.Contains(strings.ToLower(r.URL.RawPath), "%5c") {
		h.badPath(sw, r)
		return
	}
	// A HEAD of a download or of a message page would decrypt a message
	// for nobody (net/http's mux routes HEAD to GET handlers).
	if r.Method == http.MethodHead && (strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/messages/")) {
		ev := h.event(r, actionRequest)
		ev.MessageID = auditString(r.URL.Path)
		if p, _ := h.resolve(r); p != nil {
			ev.User, ev.Role = p.name, p.role
		}
		h.record(ev, access.OutcomeBadRequest, 0)
		sw.Header().Set("Allow", "GET")
		writeError(sw, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if h.metrics != nil && r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		h.metrics.ServeHTTP(sw, r)
		return
	}
	h.mux.ServeHTTP(sw, r)
}

// actionRequest is the audit action of a request that names no operation:
// a malformed path, a HEAD of something that decrypts.
const actionRequest = "request"

// badPath answers a malformed path, audited whatever it was meant for (a
// doubled slash can hide /v1/ from a prefix check): with the caller if the
// request authenticates, as unauthenticated if it presented credentials
// that do not.
func (h *handler) badPath(w http.ResponseWriter, r *http.Request) {
	ev := h.event(r, actionRequest)
	ev.MessageID = auditString(r.URL.Path)
	p, status := h.resolve(r)
	switch {
	case p != nil:
		ev.User, ev.Role = p.name, p.role
	case status == http.StatusTooManyRequests || hasCredentials(r):
		h.record(ev, access.OutcomeUnauthenticated, 0)
		writeError(w, http.StatusBadRequest, "bad request")
		return
	}
	h.record(ev, access.OutcomeBadRequest, 0)
	writeError(w, http.StatusBadRequest, "bad request")
}

// hasCredentials reports whether r presents a token or a session cookie.
func hasCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	_, err := r.Cookie(sessionCookie)
	return err == nil
}

// statusWriter remembers whether the header was sent.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	s.wrote = true
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// # Authentication

const sessionCookie = "mailvaultd_session"

// authenticate resolves the caller from a bearer token or, failing that, a
// web session cookie. On failure it answers (401 or 429), records ev and
// returns false. On success it fills ev's user and role.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, ev *access.Event) (*principal, bool) {
	p, status := h.resolve(r)
	switch status {
	case http.StatusOK:
		ev.User, ev.Role = p.name, p.role
		return p, true
	case http.StatusTooManyRequests:
		h.record(*ev, access.OutcomeThrottled, 0)
		_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		h.writeThrottled(w, r, failureKey(r, strings.TrimSpace(token)))
	default:
		h.record(*ev, access.OutcomeUnauthenticated, 0)
		w.Header().Set("WWW-Authenticate", `Bearer realm="mailvaultd"`)
		writeError(w, http.StatusUnauthorized, "unauthorized")
	}
	return nil, false
}

// resolve returns the caller and 200, or 401 (no or bad credentials) or 429
// (this token is backing off from this address). A valid token is never
// refused: the back-off is kept per (address, token) pair, so a bad token
// from a shared address (a proxy, loopback) locks out that token only.
func (h *handler) resolve(r *http.Request) (*principal, int) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return nil, http.StatusUnauthorized
		}
		token = strings.TrimSpace(token)
		if p := h.authenticateToken(token); p != nil {
			return p, http.StatusOK
		}
		key := failureKey(r, token)
		if h.throttle.wait(key) > 0 {
			return nil, http.StatusTooManyRequests
		}
		h.throttle.fail(key)
		return nil, http.StatusUnauthorized
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if sess := h.sessions.lookup(c.Value); sess != nil {
			// The session ends when its user is removed or given a new
			// token.
			if p, ok := h.users.Authenticate(sess.hash); ok && p.Name == sess.name {
				return newPrincipal(p, sess.hash), http.StatusOK
			}
		}
	}
	return nil, http.StatusUnauthorized
}

// failureKey is what the back-off counts failures by: the peer's address
// and the hash of the token it presented.
func failureKey(r *http.Request, token string) string {
	sum := access.HashToken(token)
	return remoteIP(r) + " " + hex.EncodeToString(sum[:8])
}

func (h *handler) writeThrottled(w http.ResponseWriter, r *http.Request, key string) {
	secs := int(h.throttle.wait(key).Round(time.Second) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeError(w, http.StatusTooManyRequests, "too many failed sign-ins; try again later")
}

// # Audit

func (h *handler) event(r *http.Request, action string) access.Event {
	return access.Event{Action: action, Remote: r.RemoteAddr}
}

// record writes ev with outcome and bytes. A failure is logged: the log
// then refuses further records and auditReady stops new decryptions. An
// unauthenticated denial may be counted instead (denialLimiter).
func (h *handler) record(ev access.Event, outcome string, n int64) {
	ev.Outcome, ev.Bytes = outcome, n
	if ev.User == "" && outcome != access.OutcomeOK && !h.denials.admit(ev) {
		return
	}
	h.write(ev)
}

// write records ev as it is.
func (h *handler) write(ev access.Event) {
	ev.Time = h.now()
	if err := h.audit.Record(ev); err != nil {
		h.log.Error("retrieval: audit record failed", "err", err, "action", ev.Action, "user", ev.User, "message_id", ev.MessageID, "outcome", ev.Outcome)
	}
}

// auditReady reports whether a decryption may start: only if it can be
// recorded.
func (h *handler) auditReady(w http.ResponseWriter) bool {
	if err := h.audit.Err(); err != nil {
		h.log.Error("retrieval: refusing to decrypt: the audit log is unusable", "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable")
		return false
	}
	return true
}

// auditString bounds a caller-supplied string before it goes into a record.
func auditString(s string) string {
	const max = 256
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// # Errors

// fail classifies a failure once, at the edge: what the client sees (a
// status and a generic message), what the log gets (the cause) and what the
// audit log records.
func (h *handler) fail(w http.ResponseWriter, ev access.Event, err error) {
	switch {
	case errors.Is(err, archive.ErrNotFound):
		h.record(ev, access.OutcomeNotFound, 0)
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("retrieval: request timed out", "action", ev.Action, "message_id", ev.MessageID, "err", err)
		h.record(ev, access.OutcomeError, 0)
		writeError(w, http.StatusServiceUnavailable, "unavailable")
	case errors.Is(err, context.Canceled):
		h.record(ev, access.OutcomeError, 0)
	default:
		if errors.Is(err, sealer.ErrDecrypt) {
			h.log.Error("retrieval: stored message failed authentication", "message_id", ev.MessageID, "err", err)
		} else {
			h.log.Error("retrieval: request failed", "action", ev.Action, "message_id", ev.MessageID, "err", err)
		}
		h.record(ev, access.OutcomeError, 0)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func setCommonHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
}

func writeJSON(w http.ResponseWriter, status int, v any) int64 {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal error")
		return 0
	}
	b = append(b, '\n')
	setCommonHeaders(w)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	n, _ := w.Write(b)
	return int64(n)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// # Health

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks that the store and the key service answer, that the audit
// log takes records and that any extra check passes. The body names the
// failing components, never why: that goes to the log.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var failing []string
	check := func(name string, err error) {
		if err != nil {
			h.log.Warn("retrieval: not ready", "component", name, "err", err)
			failing = append(failing, name)
		}
	}
	if p, ok := h.vault.Store().(archive.Pinger); ok {
		check("store", p.Ping(ctx))
	}
	if p, ok := h.keys.(sealer.Pinger); ok {
		check("keys", p.Ping(ctx))
	}
	check("audit", h.audit.Err())
	if h.ready != nil {
		check(h.readyName, h.ready(ctx))
	}
	if len(failing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
