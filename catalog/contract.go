// Package catalog is mailvaultd's search index: one row per archived
// message (id, receive time, size, flags, a sealed summary) and its
// blind-index tokens, in SQLite (embedded, the default) or PostgreSQL
// (shared by a fleet), with one schema and one conformance suite.
//
// It owns the schema and its migrations, both backends, the sealing of
// summaries under the catalog's summary key, and running a compiled search
// (Expr) newest first with cursor paging, a bounded count and a cap on the
// work one search may do. It never decrypts a message, never sees a data
// key, a plaintext term or a query string: the delivery core and the rebuild
// hand it rows, and the search layer hands it Exprs of tokens.
package catalog

import (
	"time"

	"github.com/mailvault/mailvaultd/blind"
)

// Flags are per-message facts a search can filter on.
type Flags uint32

const (
	FlagAttachment Flags = 1 << iota // has at least one attachment
	FlagHeld                         // under legal hold
	FlagBrokenMIME                   // the part map is one opaque part
	FlagImported                     // imported, not received
)

// Row is one archived message as the catalog records it.
type Row struct {
	ID         string    // the archive id
	ReceivedAt time.Time // as the archive records it
	Size       int64     // bytes as received
	Flags      Flags
	Tokens     []blind.Token // deduplicated by Put; empty in search results
	Summary    []byte        // sealed (SummaryBox); opened by the caller
}

// Expr is a compiled search: tokens and filters, no text.
type Expr interface{ expr() }

type (
	// AllOf matches rows every one of whose Exprs match (empty: all rows).
	AllOf []Expr
	// AnyOf matches rows any one of whose Exprs match (empty: none).
	AnyOf []Expr
	// Not matches rows E does not match.
	Not struct{ E Expr }
	// HasToken matches rows that carry the token.
	HasToken blind.Token
	// HasFlags matches rows with every flag in it set.
	HasFlags Flags
	// Received matches rows received in [After, Before) (zero: open).
	Received struct{ After, Before time.Time }
	// SizeRange matches rows with Min <= size < Max (zero Max: open).
	SizeRange struct{ Min, Max int64 }
)

func (AllOf) expr()     {}
func (AnyOf) expr()     {}
func (Not) expr()       {}
func (HasToken) expr()  {}
func (HasFlags) expr()  {}
func (Received) expr()  {}
func (SizeRange) expr() {}

// Search is one page request.
type Search struct {
	Where Expr
	// Parties restricts results to rows carrying at least one of these
	// tokens (a reader's mailboxes, blind.FieldParty); nil means no
	// restriction (an auditor). A non-nil empty slice matches nothing.
	Parties []blind.Token
	Limit   int    // capped by the catalog
	Cursor  string // opaque, from the previous Result; "" for the first page
}

// Result is one page, newest first (ties by id, ascending, as the archive
// listing orders them).
type Result struct {
	Rows []Row
	Next string // cursor of the next page; "" if this is the last
	// Count is the number of matching rows, counted up to CountCap;
	// CountCapped says the true number may be larger.
	Count       int
	CountCapped bool
}
