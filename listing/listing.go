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
}

// Page is one page of a listing.
type Page struct {
	Messages []Message
	// NextCursor continues the listing after this page; "" when there is
	// nothing more. A page may hold fewer than Limit messages (one that
	// vanished or failed authentication is left out) and still have a next
	// page.
	NextCursor string
}

// Message is what a listing shows of one message: its envelope and the
// summary the API's and the web page's lists are made of.
type Message struct {
	ID         string
	ReceivedAt time.Time
	From       string   // envelope sender, "" for the null sender
	To         []string // envelope recipients, all of them: the caller decides what its user may see
	Size       int64    // bytes as received
	Header     partmap.Header
	Parts      []partmap.Part
}

// ErrBadCursor is wrapped by the error of a listing whose Query.Cursor the
// implementation did not issue: the client's mistake, not a failure.
var ErrBadCursor = errors.New("listing: malformed cursor")
