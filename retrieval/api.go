package retrieval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/partmap"
)

// listItem is one message of GET /v1/messages. Parts holds at most
// listing.MaxParts parts (names cut to listing.MaxNameBytes); PartsTotal
// says how many the message has, and the manifest lists them all.
type listItem struct {
	ID             string         `json:"id"`
	ReceivedAt     time.Time      `json:"received_at"`
	From           string         `json:"from"`
	To             []string       `json:"to"`
	Subject        string         `json:"subject"`
	Size           int64          `json:"size"`
	Header         partmap.Header `json:"header"`
	Parts          []partmap.Part `json:"parts"`
	PartsTotal     int            `json:"parts_total"`
	PartsTruncated bool           `json:"parts_truncated"`
}

// maxCursorChars bounds a cursor before the lister sees it.
const maxCursorChars = 512

// MaxQueryBytes bounds a search (q) before the lister sees it; the whole
// query also goes into the audit record.
const MaxQueryBytes = 2 << 10

type listResponse struct {
	Messages    []listItem `json:"messages"`
	NextCursor  string     `json:"next_cursor"`
	Count       int        `json:"count"`
	CountCapped bool       `json:"count_capped"`
}

// listResult is one page as list made it.
type listResult struct {
	entries     []listEntry
	next        string
	count       int
	countCapped bool
}

// listEntry is a listed message with its JSON encoding, which sizes the
// page (see list) and is what the API sends.
type listEntry struct {
	item listItem
	json []byte
}

// apiList streams the page: the entries are encoded already (list bounded
// their sum), so nothing but a small buffer is built on top of them.
func (h *handler) apiList(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	ev := h.event(r, access.ActionList)
	p, ok := h.authenticate(w, r, &ev)
	if !ok {
		return
	}
	res, status, msg := h.list(ctx, p, r.URL.Query(), &ev)
	if status != http.StatusOK {
		writeError(w, status, msg)
		return
	}
	entries, next := res.entries, res.next
	setCommonHeaders(w)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	var n int64
	bw := bufio.NewWriterSize(&countingWriter{w: w, n: &n}, 32<<10)
	bw.WriteString(`{"messages":[`)
	for i, e := range entries {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(e.json)
	}
	cur, _ := json.Marshal(next)
	bw.WriteString(`],"next_cursor":`)
	bw.Write(cur)
	fmt.Fprintf(bw, `,"count":%d,"count_capped":%t}`+"\n", res.count, res.countCapped)
	if err := bw.Flush(); err != nil {
		h.log.Info("retrieval: list response broke off", "user", p.name, "bytes", n, "err", err)
		h.record(ev, access.OutcomeError, n)
		return
	}
	h.record(ev, access.OutcomeOK, n)
}

// list runs a listing for p. On failure it records ev and returns the status
// and the message for the client; on success the caller records ev.
//
// The entries' JSON adds up to at most the handler's maxList bytes: a page
// that would pass it ends after the last entry that fits (at least one),
// with a cursor that continues from there, if the lister gave one.
func (h *handler) list(ctx context.Context, p *principal, v url.Values, ev *access.Event) (listResult, int, string) {
	ev.Mailbox = auditString(v.Get("mailbox"))
	ev.Query = auditQuery(v.Get("q"))
	q, err := h.parseListQuery(v)
	if err != nil {
		h.record(*ev, access.OutcomeBadRequest, 0)
		return listResult{}, http.StatusBadRequest, err.Error()
	}
	if !mailboxesFor(p, v.Get("mailbox"), &q) {
		h.record(*ev, access.OutcomeDenied, 0)
		return listResult{}, http.StatusForbidden, "mailbox not permitted"
	}
	if err := h.audit.Err(); err != nil {
		h.log.Error("retrieval: refusing to decrypt: the audit log is unusable", "err", err)
		return listResult{}, http.StatusServiceUnavailable, "unavailable"
	}
	page, err := h.lister.List(ctx, q)
	if status, msg, failed := h.listFailed(ctx, p, ev, err); failed {
		return listResult{}, status, msg
	}
	msgs := h.readableOnly(p, page.Messages)
	entries := make([]listEntry, 0, len(msgs))
	next, size := page.NextCursor, 0
	for i, m := range msgs {
		// A lister other than archivelist may not have bounded it.
		m = listing.Summarize(m)
		it := listItem{
			ID: m.ID, ReceivedAt: m.ReceivedAt, From: m.From, To: visibleRecipients(p, m.From, m.To),
			Subject: m.Header.Subject, Size: m.Size, Header: m.Header, Parts: nonNil(m.Parts),
			PartsTotal: m.PartsTotal, PartsTruncated: m.PartsTotal > len(m.Parts),
		}
		b, err := json.Marshal(it)
		if err != nil {
			h.log.Error("retrieval: encoding a listed message", "message_id", m.ID, "err", err)
			h.record(*ev, access.OutcomeError, 0)
			return listResult{}, http.StatusInternalServerError, "internal error"
		}
		if len(entries) > 0 && size+len(b) > h.maxList && msgs[i-1].Cursor != "" {
			next = msgs[i-1].Cursor
			break
		}
		size += len(b) + 1
		entries = append(entries, listEntry{item: it, json: b})
	}
	return listResult{entries: entries, next: next, count: page.Count, countCapped: page.CountCapped}, http.StatusOK, ""
}

// listFailed classifies a lister's error: the status and message for the
// client, with ev recorded. failed is false if err is nil.
func (h *handler) listFailed(ctx context.Context, p *principal, ev *access.Event, err error) (status int, msg string, failed bool) {
	switch {
	case err == nil:
		return 0, "", false
	case errors.Is(err, listing.ErrBadCursor):
		h.record(*ev, access.OutcomeBadRequest, 0)
		return http.StatusBadRequest, "cursor: malformed", true
	case errors.Is(err, listing.ErrBadQuery):
		// The error's text is the lister's account of what is wrong and
		// where, written for the client.
		h.record(*ev, access.OutcomeBadRequest, 0)
		return http.StatusBadRequest, strings.TrimPrefix(err.Error(), listing.ErrBadQuery.Error()+": "), true
	case errors.Is(err, listing.ErrNoSearch):
		h.record(*ev, access.OutcomeBadRequest, 0)
		return http.StatusNotImplemented, "search is not available: this vault has no catalog", true
	case errors.Is(err, listing.ErrUnavailable):
		h.log.Warn("retrieval: listing unavailable", "err", err)
		h.record(*ev, access.OutcomeError, 0)
		return http.StatusServiceUnavailable, "catalog unavailable, try again later", true
	}
	status, msg = http.StatusInternalServerError, "internal error"
	if ctx.Err() != nil {
		status, msg = http.StatusServiceUnavailable, "unavailable"
	}
	h.log.Error("retrieval: listing failed", "user", p.name, "err", err)
	h.record(*ev, access.OutcomeError, 0)
	return status, msg, true
}

// auditQuery is a search as the audit record holds it: whole up to
// MaxQueryBytes (a longer one is refused, and recorded cut).
func auditQuery(s string) string {
	if len(s) > MaxQueryBytes {
		s = s[:MaxQueryBytes]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// visibleRecipients is the envelope recipient list that p may see: all of
// it for an auditor or the sender, otherwise only p's own mailboxes, so that
// one recipient never learns another's (a Bcc, say) from the archive.
func visibleRecipients(p *principal, from string, rcpts []string) []string {
	if p.role == access.RoleAuditor || (from != "" && p.hasMailbox(archive.NormalizeAddress(from))) {
		return nonNil(rcpts)
	}
	var to []string
	for _, rcpt := range rcpts {
		if p.hasMailbox(archive.NormalizeAddress(rcpt)) {
			to = append(to, rcpt)
		}
	}
	return nonNil(to)
}

// parseListQuery checks the request's parameters and returns the query
// without its mailboxes (mailboxesFor adds those).
func (h *handler) parseListQuery(v url.Values) (listing.Query, error) {
	q := listing.Query{Limit: defaultPageSize}
	for k, vs := range v {
		switch k {
		case "mailbox", "since", "until", "limit", "cursor", "q":
			if len(vs) > 1 {
				return q, fmt.Errorf("%s given more than once", k)
			}
		default:
			return q, fmt.Errorf("unknown parameter %q", auditString(k))
		}
	}
	if mb := v.Get("mailbox"); mb != "" {
		if err := access.ValidateMailbox(mb); err != nil {
			return q, fmt.Errorf("mailbox: not an address")
		}
	}
	var err error
	if q.Since, err = parseTime(v.Get("since")); err != nil {
		return q, fmt.Errorf("since: %v", err)
	}
	if q.Until, err = parseTime(v.Get("until")); err != nil {
		return q, fmt.Errorf("until: %v", err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, fmt.Errorf("since must be before until")
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || len(s) > 6 {
			return q, fmt.Errorf("limit: want a positive integer")
		}
		q.Limit = min(n, h.maxPage)
	}
	q.Limit = min(q.Limit, h.maxPage)
	// The cursor's form is the lister's to check; its length is ours.
	if q.Cursor = v.Get("cursor"); len(q.Cursor) > maxCursorChars {
		return q, fmt.Errorf("cursor: too long")
	}
	// The query's syntax is the lister's to check; its length is ours.
	if q.Q = strings.TrimSpace(v.Get("q")); len(q.Q) > MaxQueryBytes {
		return q, fmt.Errorf("q: longer than %d bytes", MaxQueryBytes)
	} else if !utf8.ValidString(q.Q) {
		return q, fmt.Errorf("q: not UTF-8")
	}
	return q, nil
}

// parseTime accepts RFC 3339 or a date (midnight UTC); "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339 (2006-01-02T15:04:05Z) or a date (2006-01-02)")
}

// openReadable runs what every message request shares: authentication, the
// id check, the audit log check, opening the manifest and authorisation. On
// failure it has answered and recorded ev.
func (h *handler) openReadable(ctx context.Context, w http.ResponseWriter, r *http.Request, ev *access.Event, partNumber *string) (*principal, *message, bool) {
	p, ok := h.authenticate(w, r, ev)
	if !ok {
		return nil, nil, false
	}
	id := r.PathValue("id")
	ev.MessageID = auditString(id)
	if !validID(id) {
		h.record(*ev, access.OutcomeBadRequest, 0)
		writeError(w, http.StatusBadRequest, "invalid message id")
		return nil, nil, false
	}
	if partNumber != nil {
		n, ok := parsePartNumber(*partNumber)
		if !ok {
			h.record(*ev, access.OutcomeBadRequest, 0)
			writeError(w, http.StatusBadRequest, "invalid part number")
			return nil, nil, false
		}
		ev.Part = &n
	}
	if !h.auditReady(w) {
		return nil, nil, false
	}
	msg, err := h.openMessage(ctx, id)
	if err != nil {
		h.fail(w, *ev, err)
		return nil, nil, false
	}
	if !p.mayRead(msg.m.From, msg.m.To) {
		msg.close()
		h.record(*ev, access.OutcomeDenied, 0)
		writeError(w, http.StatusNotFound, "not found")
		return nil, nil, false
	}
	return p, msg, true
}

// parsePartNumber accepts a decimal part index without sign or leading zero.
func parsePartNumber(s string) (int, bool) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (h *handler) apiManifest(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	ev := h.event(r, access.ActionManifest)
	p, msg, ok := h.openReadable(ctx, w, r, &ev, nil)
	if !ok {
		return
	}
	defer msg.close()
	m := *msg.m
	m.To = visibleRecipients(p, msg.m.From, msg.m.To)
	m.Parts = nonNil(m.Parts)
	n := writeJSON(w, http.StatusOK, &m)
	h.record(ev, access.OutcomeOK, n)
}

func (h *handler) apiRaw(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), streamMaxDuration)
	defer cancel()
	ev := h.event(r, access.ActionRaw)
	_, msg, ok := h.openReadable(ctx, w, r, &ev, nil)
	if !ok {
		return
	}
	defer msg.close()
	rc, err := h.reader(ctx, msg, 0, -1)
	if err != nil {
		h.fail(w, ev, err)
		return
	}
	defer rc.Close()
	setDownloadHeaders(w, "message/rfc822", msg.id+".eml")
	w.Header().Set("Content-Length", strconv.FormatInt(msg.Size(), 10))
	w.WriteHeader(http.StatusOK)
	h.stream(w, rc, ev, msg.Size())
}

func (h *handler) apiPart(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), streamMaxDuration)
	defer cancel()
	ev := h.event(r, access.ActionPart)
	pn := r.PathValue("n")
	_, msg, ok := h.openReadable(ctx, w, r, &ev, &pn)
	if !ok {
		return
	}
	defer msg.close()
	n := *ev.Part
	if n >= len(msg.m.Parts) {
		h.record(ev, access.OutcomeNotFound, 0)
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	part := msg.m.Parts[n]
	rc, err := h.reader(ctx, msg, part.Offset, part.Length)
	if err != nil {
		h.fail(w, ev, err)
		return
	}
	defer rc.Close()
	setDownloadHeaders(w, partContentType(part), partFilename(part, msg.id, n))
	// The scanner counts DecodedSize with the decoder used here; should the
	// two ever disagree, the stream breaks off rather than end short.
	w.Header().Set("Content-Length", strconv.FormatInt(part.DecodedSize, 10))
	w.WriteHeader(http.StatusOK)
	h.stream(w, partmap.Decode(rc, part.TransferEncoding), ev, part.DecodedSize)
}

// stream copies a download to the client, moving the write deadline on
// with every write, and records ev with the bytes sent. If the stream
// breaks off (a chunk fails authentication, the store fails, the client
// goes away) the connection is dropped so that the client cannot take a
// short body for a whole one.
func (h *handler) stream(w http.ResponseWriter, r io.Reader, ev access.Event, want int64) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteStall))
			m, werr := w.Write(buf[:n])
			sent += int64(m)
			if werr != nil {
				h.log.Info("retrieval: download broke off", "action", ev.Action, "message_id", ev.MessageID, "user", ev.User, "bytes", sent, "err", werr)
				h.record(ev, access.OutcomeError, sent)
				panic(http.ErrAbortHandler)
			}
		}
		if rerr == io.EOF && sent != want {
			rerr = fmt.Errorf("stream ended after %d bytes, want %d", sent, want)
		}
		if rerr == io.EOF {
			clear(buf)
			h.record(ev, access.OutcomeOK, sent)
			return
		}
		if rerr != nil {
			clear(buf)
			h.log.Error("retrieval: download failed", "action", ev.Action, "message_id", ev.MessageID, "user", ev.User, "bytes", sent, "err", rerr)
			h.record(ev, access.OutcomeError, sent)
			panic(http.ErrAbortHandler)
		}
	}
}

// setDownloadHeaders marks a response as a download that a browser must
// neither render nor sniff.
func setDownloadHeaders(w http.ResponseWriter, contentType, filename string) {
	setCommonHeaders(w)
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Disposition", contentDisposition(filename))
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("X-Frame-Options", "DENY")
}

// partContentType is the part's media type with its charset, or
// application/octet-stream if the type is not a well-formed type/subtype.
func partContentType(p partmap.Part) string {
	mt, _, err := mime.ParseMediaType(p.ContentType)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	params := map[string]string{}
	if cs := strings.ToLower(strings.TrimSpace(p.Charset)); cs != "" && isToken(cs) && len(cs) <= 64 {
		params["charset"] = cs
	}
	if s := mime.FormatMediaType(mt, params); s != "" {
		return s
	}
	return "application/octet-stream"
}

func isToken(s string) bool {
	for _, c := range s {
		if c > 0x7e || c <= ' ' || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return s != ""
}

// partFilename is the part's filename, reduced to its last path element and
// freed of control characters; or "<id>-part<n>" with an extension for its
// type.
func partFilename(p partmap.Part, id string, n int) string {
	name := strings.ReplaceAll(p.Filename, `\`, "/")
	name = path.Base(name)
	name = strings.Map(func(r rune) rune {
		// Control characters, line separators and bidirectional controls
		// (which can make "exe.pdf" of "fdp.exe") go.
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u200e' || r == '\u200f' ||
			(r >= '\u2028' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	name = strings.TrimSpace(strings.Trim(name, "."))
	if name == "" || name == "/" {
		name = fmt.Sprintf("%s-part%d", id, n)
		mt, _, _ := mime.ParseMediaType(p.ContentType)
		switch mt {
		case "text/plain":
			name += ".txt"
		case "text/html":
			name += ".html"
		case "message/rfc822":
			name += ".eml"
		default:
			if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
				name += exts[0]
			} else {
				name += ".bin"
			}
		}
	}
	if r := []rune(name); len(r) > 200 {
		name = string(r[len(r)-200:])
	}
	return name
}

// contentDisposition is an attachment disposition with an ASCII filename
// for old clients and the exact name as RFC 5987 filename*.
func contentDisposition(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '/' || r == ';' || r == '%' {
			return '_'
		}
		return r
	}, name)
	var ext strings.Builder
	for _, b := range []byte(name) {
		if isAttrChar(b) {
			ext.WriteByte(b)
		} else {
			fmt.Fprintf(&ext, "%%%02X", b)
		}
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii, ext.String())
}

// isAttrChar is RFC 5987's attr-char.
func isAttrChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return slices.Contains([]byte("!#$&+-.^_`|~"), b)
}
