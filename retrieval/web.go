package retrieval

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/restore"
)

// The web page is server-rendered HTML with no script at all: a sign-in
// form, the message list, and one message with its headers and text body
// shown as escaped text. Downloads go to the API, which takes the session
// cookie as well as a bearer token.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageCSP forbids scripts, frames, plugins and foreign resources on every
// page; archived content is never put in a page as markup anyway.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxBodyView bounds the text body shown on a page; the rest is a download.
const maxBodyView = 256 << 10

func parsePages() *template.Template {
	funcs := template.FuncMap{
		"bytes": humanBytes,
	}
	return template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
}

// staticHandler serves the embedded files under /static/, and only files:
// a directory (/static/ itself included) is 404, never a listing.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if fi, err := fs.Stat(sub, name); name == "" || strings.HasSuffix(name, "/") || err != nil || !fi.Mode().IsRegular() {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// # Sessions

const (
	sessionTTL  = 8 * time.Hour
	maxSessions = 10_000
	// maxUserSessions bounds one user's sessions: a user who signs in more
	// often loses their own oldest session, never anyone else's.
	maxUserSessions = 20
)

type session struct {
	name    string
	hash    access.TokenHash // of the token the user signed in with
	expires time.Time
}

// sessionStore holds web sessions in memory: a restart signs everyone out.
// A session belongs to a user name and that user's token hash, so removing
// the user or giving them a new token ends it at the next request.
type sessionStore struct {
	mu     sync.Mutex
	m      map[[sha256.Size]byte]*session
	byUser map[string][][sha256.Size]byte // session keys per user, oldest first
	now    func() time.Time
}

func newSessionStore() *sessionStore {
	return &sessionStore{m: make(map[[sha256.Size]byte]*session), byUser: make(map[string][][sha256.Size]byte), now: time.Now}
}

func (s *sessionStore) create(p *principal) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// The user's own sessions first: those gone, then their oldest.
	keys := slices.DeleteFunc(s.byUser[p.name], func(k [sha256.Size]byte) bool {
		v := s.m[k]
		if v != nil && now.After(v.expires) {
			delete(s.m, k)
		}
		return s.m[k] == nil
	})
	for len(keys) >= maxUserSessions {
		delete(s.m, keys[0])
		keys = keys[1:]
	}
	if len(s.m) >= maxSessions {
		// Many users at their cap: the session closest to its end goes.
		var oldestK [sha256.Size]byte
		var oldest time.Time
		for k, v := range s.m {
			if now.After(v.expires) {
				delete(s.m, k)
			} else if oldest.IsZero() || v.expires.Before(oldest) {
				oldestK, oldest = k, v.expires
			}
		}
		if len(s.m) >= maxSessions {
			delete(s.m, oldestK)
		}
	}
	k := sha256.Sum256([]byte(id))
	s.m[k] = &session{name: p.name, hash: p.hash, expires: now.Add(sessionTTL)}
	s.byUser[p.name] = append(slices.Clip(keys), k)
	return id, nil
}

// lookup returns the live session id, or nil. The caller checks that its
// user still holds the token it signed in with.
func (s *sessionStore) lookup(id string) *session {
	if id == "" || len(id) > 64 {
		return nil
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	sess := s.m[k]
	if sess != nil && s.now().After(sess.expires) {
		delete(s.m, k)
		sess = nil
	}
	s.mu.Unlock()
	return sess
}

func (s *sessionStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

// # Pages

func (h *handler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.ExecuteTemplate(&buf, name, data); err != nil {
		h.log.Error("retrieval: rendering page", "page", name, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	setCommonHeaders(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type pageUser struct {
	Name      string
	Role      access.Role
	Mailboxes []string
}

func userOf(p *principal) *pageUser {
	return &pageUser{Name: p.name, Role: p.role, Mailboxes: p.mailboxes}
}

type signInPage struct {
	User  *pageUser
	Error string
}

type errorPage struct {
	User    *pageUser
	Status  int
	Message string
}

type listRow struct {
	ID          string
	Date        string
	From        string
	Subject     string
	Size        int64
	Attachments []attachmentLink // among the parts the listing shows
	MoreParts   int              // parts the listing does not show
}

type attachmentLink struct {
	Name string
	Href string
	Size int64
}

type listPage struct {
	User        *pageUser
	Mailbox     string
	Since       string
	Until       string
	Q           string
	Count       int
	CountCapped bool
	Error       string // a refused search, shown above the kept query
	Messages    []listRow
	NextQuery   string
	ExportMbox  string // /v1/export of this listing
	ExportZip   string
}

type restoredPage struct {
	User    *pageUser
	ID      string
	To      string
	OK      bool
	Reply   restore.Reply
	Message string
}

type messagePage struct {
	User         *pageUser
	ID           string
	Received     string
	EnvFrom      string
	EnvTo        []string
	Header       partmap.Header
	Body         string
	BodyNote     string
	Parts        []partRow // the first webPartsShown
	MoreParts    int       // not in Parts: the manifest lists them
	ManifestHref string
	RawHref      string
	RawSize      int64
	BrokenMIME   string
}

type partRow struct {
	N           int
	Name        string
	ContentType string
	Size        int64
	Href        string
}

func (h *handler) webIndex(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	p, status := h.resolve(r)
	if status != http.StatusOK {
		// A visit without credentials is just the sign-in form; a bad
		// token or a forged or expired cookie is a denial.
		if hasCredentials(r) {
			ev := h.event(r, access.ActionList)
			h.record(ev, outcomeOf(status), 0)
		}
		h.render(w, http.StatusOK, "signin.html", signInPage{})
		return
	}
	ev := h.event(r, access.ActionList)
	ev.User, ev.Role = p.name, p.role
	v := r.URL.Query()
	res, st, msg := h.list(ctx, p, v, &ev)
	items, next := res.entries, res.next
	page := listPage{User: userOf(p), Mailbox: v.Get("mailbox"), Since: v.Get("since"), Until: v.Get("until"), Q: v.Get("q"),
		Count: res.count, CountCapped: res.countCapped}
	if st == http.StatusBadRequest || st == http.StatusNotImplemented {
		// A refused search: the page again, the query kept in the box.
		page.Error = msg
		h.render(w, st, "list.html", page)
		return
	}
	if st != http.StatusOK {
		h.render(w, st, "error.html", errorPage{User: userOf(p), Status: st, Message: msg})
		return
	}
	xv := url.Values{}
	for _, k := range []string{"mailbox", "since", "until", "q"} {
		if s := v.Get(k); s != "" {
			xv.Set(k, s)
		}
	}
	xv.Set("format", "mbox")
	page.ExportMbox = "/v1/export?" + xv.Encode()
	xv.Set("format", "zip")
	page.ExportZip = "/v1/export?" + xv.Encode()
	for _, e := range items {
		it := e.item
		row := listRow{ID: it.ID, Date: it.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC"), From: it.Header.From, Subject: it.Subject, Size: it.Size}
		if row.From == "" {
			row.From = it.From
		}
		for i, part := range it.Parts {
			if isAttachment(part) {
				row.Attachments = append(row.Attachments, attachmentLink{Name: partFilename(part, it.ID, i), Href: partHref(it.ID, i), Size: part.DecodedSize})
			}
		}
		row.MoreParts = it.PartsTotal - len(it.Parts)
		page.Messages = append(page.Messages, row)
	}
	if next != "" {
		nv := url.Values{"cursor": {next}}
		for _, k := range []string{"mailbox", "since", "until", "limit", "q"} {
			if s := v.Get(k); s != "" {
				nv.Set(k, s)
			}
		}
		page.NextQuery = "?" + nv.Encode()
	}
	var n int64
	cw := &countingWriter{w: w, n: &n}
	h.render(cw, http.StatusOK, "list.html", page)
	h.record(ev, access.OutcomeOK, n)
}

// outcomeOf is the audit outcome of a failed resolve.
func outcomeOf(status int) string {
	if status == http.StatusTooManyRequests {
		return access.OutcomeThrottled
	}
	return access.OutcomeUnauthenticated
}

func partHref(id string, n int) string {
	return "/v1/messages/" + id + "/parts/" + strconv.Itoa(n)
}

func isAttachment(p partmap.Part) bool {
	return p.Filename != "" || strings.EqualFold(p.Disposition, "attachment")
}

func (h *handler) webMessage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	if _, status := h.resolve(r); status != http.StatusOK {
		ev := h.event(r, access.ActionView)
		ev.MessageID = auditString(r.PathValue("id"))
		h.record(ev, outcomeOf(status), 0)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	ev := h.event(r, access.ActionView)
	hw := &htmlErrors{ResponseWriter: w, h: h}
	p, msg, ok := h.openReadable(ctx, hw, r, &ev, nil)
	if !ok {
		return
	}
	defer msg.close()
	m := msg.m
	page := messagePage{
		User: userOf(p), ID: m.ID, Received: m.ReceivedAt.UTC().Format(time.RFC1123),
		EnvFrom: m.From, EnvTo: visibleRecipients(p, m.From, m.To), Header: m.Header,
		RawHref: "/v1/messages/" + m.ID + "/raw", RawSize: m.Size, BrokenMIME: m.Broken,
		ManifestHref: "/v1/messages/" + m.ID,
	}
	body := -1
	for i, part := range m.Parts {
		mt, _, _ := mime.ParseMediaType(part.ContentType)
		if body < 0 && mt == "text/plain" && !strings.EqualFold(part.Disposition, "attachment") {
			body = i
		}
		// A message can have a thousand parts with long names: the page
		// lists the first webPartsShown, the manifest all of them.
		if len(page.Parts) < webPartsShown {
			page.Parts = append(page.Parts, partRow{N: i, Name: partFilename(part, m.ID, i), ContentType: partContentType(part), Size: part.DecodedSize, Href: partHref(m.ID, i)})
		} else {
			page.MoreParts++
		}
	}
	var shown int64
	if body >= 0 {
		ev.Part = &body
		part := m.Parts[body]
		rc, err := h.reader(ctx, msg, part.Offset, part.Length)
		if err != nil {
			h.fail(hw, ev, err)
			return
		}
		b, err := io.ReadAll(io.LimitReader(partmap.Decode(rc, part.TransferEncoding), maxBodyView+1))
		rc.Close()
		if err != nil {
			h.fail(hw, ev, err)
			return
		}
		if len(b) > maxBodyView {
			b = b[:maxBodyView]
			page.BodyNote = "The text is cut short here; download the part or the message for all of it."
		}
		shown = int64(len(b))
		page.Body = toUTF8(b, part.Charset)
		clear(b)
	} else {
		page.BodyNote = "This message has no plain-text body. Its parts can be downloaded below; HTML is never displayed here."
	}
	var n int64
	h.render(&countingWriter{w: w, n: &n}, http.StatusOK, "message.html", page)
	h.record(ev, access.OutcomeOK, shown)
}

// htmlErrors turns the JSON error answers of the shared request path into
// pages for the browser.
type htmlErrors struct {
	http.ResponseWriter
	h       *handler
	status  int
	swallow bool
}

func (e *htmlErrors) WriteHeader(code int) {
	if code >= 400 && e.Header().Get("Content-Type") == "application/json; charset=utf-8" {
		e.swallow = true
		for _, k := range []string{"Content-Type", "Content-Length"} {
			e.Header().Del(k)
		}
		msg := http.StatusText(code)
		if code == http.StatusNotFound {
			msg = "There is no such message, or it is not yours to read."
		}
		e.h.render(e.ResponseWriter, code, "error.html", errorPage{Status: code, Message: msg})
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *htmlErrors) Write(b []byte) (int, error) {
	if e.swallow {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

func (h *handler) webSignIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "forbidden")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	ev := h.event(r, access.ActionSignIn)
	token := strings.TrimSpace(r.PostFormValue("token"))
	p := h.authenticateToken(token)
	if p == nil {
		key := failureKey(r, token)
		if h.throttle.wait(key) > 0 {
			h.record(ev, access.OutcomeThrottled, 0)
			h.render(w, http.StatusTooManyRequests, "signin.html", signInPage{Error: "Too many failed sign-ins with that token. Wait a while and try again."})
			return
		}
		if token != "" {
			h.throttle.fail(key)
		}
		h.record(ev, access.OutcomeUnauthenticated, 0)
		h.render(w, http.StatusUnauthorized, "signin.html", signInPage{Error: "That token is not valid."})
		return
	}
	id, err := h.sessions.create(p)
	if err != nil {
		h.log.Error("retrieval: creating session", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	ev.User, ev.Role = p.name, p.role
	h.record(ev, access.OutcomeOK, 0)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: h.overTLS(r), SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// webRestore is the message page's restore button: the same restore as the
// API's, behind the same same-origin check as sign-out (with the
// SameSite=Strict session cookie, a form on another site cannot post it).
func (h *handler) webRestore(w http.ResponseWriter, r *http.Request) {
	ev := h.event(r, access.ActionRestore)
	if !sameOrigin(r) {
		h.record(ev, access.OutcomeDenied, 0)
		writeError(w, http.StatusForbidden, "forbidden")
		return
	}
	if _, status := h.resolve(r); status != http.StatusOK {
		ev.MessageID = auditString(r.PathValue("id"))
		h.record(ev, outcomeOf(status), 0)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	to := r.PostFormValue("to")
	status, res, msg := h.restore(w, r, &ev, to, nil)
	p, _ := h.resolve(r)
	page := restoredPage{User: userOf(p), ID: r.PathValue("id"), To: res.To, OK: status == http.StatusOK, Reply: res.Reply, Message: msg}
	if status == http.StatusNotFound {
		page.Message = "There is no such message."
	}
	h.render(w, status, "restored.html", page)
}

func (h *handler) webSignOut(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "forbidden")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		h.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.overTLS(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// overTLS reports whether the client reached us over TLS: directly, or
// through a trusted proxy that says so in X-Forwarded-Proto.
func (h *handler) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
		return false
	}
	addr, err := netip.ParseAddr(remoteIP(r))
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range h.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// sameOrigin refuses a form post from another site (on top of the
// SameSite=Strict cookie): an Origin header, if sent, must name this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// toUTF8 makes a text body displayable: UTF-8 and US-ASCII are kept (invalid
// sequences replaced), ISO-8859-1 and windows-1252 are converted, anything
// else is shown with invalid sequences replaced.
func toUTF8(b []byte, charset string) string {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "iso-8859-1", "latin1", "iso_8859-1", "l1", "windows-1252", "cp1252":
		var sb strings.Builder
		sb.Grow(len(b))
		for _, c := range b {
			sb.WriteRune(rune(c))
		}
		return sb.String()
	default:
		if utf8.Valid(b) {
			return string(b)
		}
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
}

type countingWriter struct {
	w http.ResponseWriter
	n *int64
}

func (c *countingWriter) Header() http.Header  { return c.w.Header() }
func (c *countingWriter) WriteHeader(code int) { c.w.WriteHeader(code) }
func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	*c.n += int64(n)
	return n, err
}
