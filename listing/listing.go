// Package listing owns what a listing of the archive is, independent of what
// produces it: the query, the page and the summary of one listed message.
// retrieval declares the interface that takes a Query and returns a Page;
// archivelist (the archive's own index) implements it, and a catalog will.
//
// listing never lists anything itself, never authorises (the caller checks
// every listed message against its user) and never decrypts.
package listing

import (
	"errors"
	"time"
	"unicode/utf8"

	"github.com/mailvault/mailvaultd/partmap"
)

// Query asks for one page of a listing, newest first.
type Query struct {
	// All lists every message (an auditor's listing); Mailboxes is then
	// ignored. It is a field of its own so that a reader whose mailbox list
	// is empty lists nothing, never everything.
	All bool
	// Mailboxes lists the messages whose envelope sender or a recipient is
	// one of these normalised addresses (archive.NormalizeAddress); a
	// message to two of them is listed once.
	Mailboxes []string
	// Since and Until bound the receive time to [Since, Until); zero values
	// leave that side open.
	Since, Until time.Time
	// Limit is the largest page; the implementation may lower it.
	Limit int
	// Cursor is the NextCursor of the page before, "" for the first page.
	// Its format is the implementation's: it is opaque to the caller.
	Cursor string
	// Q is a search in the query language (package searchquery), "" for
	// none. An implementation that cannot search answers ErrNoSearch; a
	// query that does not parse, or would cost too much, is an error that
	// wraps ErrBadQuery and says what is wrong and where.
	Q string
}

// Page is one page of a listing.
type Page struct {
	Messages []Message
	// NextCursor continues the listing after this page; "" when there is
	// nothing more. A page may hold fewer than Limit messages (one that
	// vanished or failed authentication is left out) and still have a next
	// page.
	NextCursor string
	// Count is how many messages match in all, counted up to a cap
	// (CountCapped then says there may be more); both are zero when the
	// implementation does not count.
	Count       int
	CountCapped bool
}

// Message is what a listing shows of one message: its envelope and the
// summary the API's and the web page's lists are made of. The summary is
// bounded whatever the message holds (see Summarize): the whole part list is
// the manifest's, never a listing's.
type Message struct {
	ID         string
	ReceivedAt time.Time
	From       string   // envelope sender, "" for the null sender
	To         []string // envelope recipients, all of them: the caller decides what its user may see
	Size       int64    // bytes as received
	Header     partmap.Header
	// Parts are the first MaxParts parts, names cut to MaxNameBytes;
	// PartsTotal is how many the message has.
	Parts      []partmap.Part
	PartsTotal int
	// Cursor continues the listing right after this message, so that the
	// caller may end a page early (a response that would grow too big); ""
	// if the implementation cannot say, and then the caller cannot cut.
	Cursor string
}

// Bounds of a listed message's summary. Anyone who can send mail decides
// how many parts a message has and what they are called (a 1.1 MB message
// can carry 1,000 attachments with 1,000-character names); a listing of 200
// such messages must not carry them all.
const (
	// MaxParts is how many parts a listed message shows.
	MaxParts = 20
	// MaxNameBytes bounds a listed part's filename and content type.
	MaxNameBytes = 200
	// MaxHeaderFieldBytes bounds each field of a listed message's header
	// summary.
	MaxHeaderFieldBytes = 1 << 10
)

// Summarize returns m with its summary bounded: at most MaxParts parts,
// their filenames and content types cut to MaxNameBytes, the header fields
// cut to MaxHeaderFieldBytes, and PartsTotal set (unless m's own is larger:
// m may be summarised already). It copies what it cuts, so that the page
// does not keep a whole manifest alive behind a short slice.
func Summarize(m Message) Message {
	m.PartsTotal = max(m.PartsTotal, len(m.Parts))
	parts := make([]partmap.Part, 0, min(len(m.Parts), MaxParts))
	for _, p := range m.Parts[:min(len(m.Parts), MaxParts)] {
		p.Filename = cut(p.Filename, MaxNameBytes)
		p.ContentType = cut(p.ContentType, MaxNameBytes)
		parts = append(parts, p)
	}
	m.Parts = parts
	h := &m.Header
	for _, f := range []*string{&h.From, &h.To, &h.Cc, &h.Subject, &h.Date, &h.MessageID} {
		*f = cut(*f, MaxHeaderFieldBytes)
	}
	return m
}

// cut returns s cut to at most n bytes on a UTF-8 boundary, copied if cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return string([]byte(s[:n]))
}

// ErrBadCursor is wrapped by the error of a listing whose Query.Cursor the
// implementation did not issue: the client's mistake, not a failure.
var ErrBadCursor = errors.New("listing: malformed cursor")

// ErrBadQuery is wrapped by the error of a listing whose Query.Q is
// malformed or too expensive: the client's mistake (HTTP 400), and the
// error's text says what is wrong, for the client.
var ErrBadQuery = errors.New("listing: bad query")

// ErrUnavailable is wrapped by the error of a listing whose source cannot
// be reached just now (the catalog's database is down): the service's
// failure, not the client's (HTTP 503).
var ErrUnavailable = errors.New("listing: unavailable")

// ErrNoSearch is the error of a listing asked to search (Query.Q) by an
// implementation that cannot (the archive's own index).
var ErrNoSearch = errors.New("listing: search needs the catalog")
