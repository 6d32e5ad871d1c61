// Package archivelist lists the archive from its own index: it merges the
// Vault's per-mailbox listings into one page, newest first, and opens the
// manifest of each message on it for the summary a listing shows. It is the
// first implementation of the listing retrieval declares (listing.Query in,
// listing.Page out); a catalog will be the second.
//
// archivelist never authorises (retrieval checks every listed message against
// its user), never serves HTTP and never writes to the archive. It has one
// cursor format, the Vault's, and one order, the Vault's: newest first, and
// messages received at the same nanosecond by id, ascending.
package archivelist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// Index is the archive's index as archivelist reads it: one mailbox's
// entries ("" for every message) in [since, until), newest first, from a
// cursor. *archive.Vault is one.
type Index interface {
	List(ctx context.Context, mailbox string, since, until time.Time, limit int, cursor string) ([]archive.Entry, string, error)
}

var _ Index = (*archive.Vault)(nil)

// OpenManifest opens the sealed manifest of message id (sealed.OpenManifest
// over the Vault and key provider, in the daemon). A message that is gone
// is archive.ErrNotFound; one that fails authentication wraps
// sealer.ErrDecrypt. This type and toMessage are the only places that know
// the manifest's type.
type OpenManifest func(ctx context.Context, id string) (*sealed.Manifest, error)

// maxLimit bounds a page (the Vault's own bound).
const maxLimit = 1000

// parallelism bounds the manifests opened at once by one Lister, over all
// the pages it is making: each costs a key-service call, and a manifest can
// take megabytes to open (1,000 parts with long names), so concurrent
// listings must not multiply that.
const parallelism = 2

// Lister lists the archive. It is safe for concurrent use.
type Lister struct {
	index Index
	open  OpenManifest
	log   *slog.Logger
	sem   chan struct{} // parallelism
}

// New returns a Lister over index that opens manifests with open. A nil log
// is slog.Default().
func New(index Index, open OpenManifest, log *slog.Logger) *Lister {
	if index == nil || open == nil {
		panic("archivelist: New needs an index and a manifest opener")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Lister{index: index, open: open, log: log, sem: make(chan struct{}, parallelism)}
}

// List returns one page of q. A cursor the Vault did not issue is an error
// wrapping listing.ErrBadCursor. A listed message that vanished since it was
// listed is left out, and so is one whose manifest fails authentication
// (logged as an integrity failure); any other failure fails the page.
func (l *Lister) List(ctx context.Context, q listing.Query) (listing.Page, error) {
	if q.Q != "" {
		return listing.Page{}, fmt.Errorf("archivelist: %w", listing.ErrNoSearch)
	}
	if q.Cursor != "" && !archive.ValidCursor(q.Cursor) {
		return listing.Page{}, fmt.Errorf("archivelist: %w", listing.ErrBadCursor)
	}
	limit := min(max(q.Limit, 1), maxLimit)
	var mailboxes []string
	switch {
	case q.All:
		mailboxes = []string{""}
	case len(q.Mailboxes) == 0:
		return listing.Page{}, nil
	default:
		for _, mb := range q.Mailboxes {
			if mb == "" {
				// "" is every message to the Vault: never let an empty
				// mailbox widen a reader's listing.
				return listing.Page{}, errors.New("archivelist: an empty mailbox in the query")
			}
		}
		mailboxes = q.Mailboxes
	}
	entries, next, err := l.merge(ctx, q, mailboxes, limit)
	if err != nil {
		return listing.Page{}, err
	}
	msgs, err := l.openAll(ctx, entries)
	if err != nil {
		return listing.Page{}, err
	}
	return listing.Page{Messages: msgs, NextCursor: next}, nil
}

// before reports whether a comes before b in the listing: newer, or as new
// with a smaller id (the Vault's key order).
func before(a, b archive.Entry) bool {
	if !a.ReceivedAt.Equal(b.ReceivedAt) {
		return a.ReceivedAt.After(b.ReceivedAt)
	}
	return a.ID < b.ID
}

// stream pages through the Vault listing of one mailbox.
type stream struct {
	mailbox string
	buf     []archive.Entry
	cursor  string // of the next Vault page
	done    bool
}

// head returns the stream's next entry, fetching a page if needed; nil at the
// end.
func (l *Lister) head(ctx context.Context, s *stream, q listing.Query, limit int) (*archive.Entry, error) {
	if len(s.buf) == 0 && !s.done {
		es, next, err := l.index.List(ctx, s.mailbox, q.Since, q.Until, limit, s.cursor)
		if err != nil {
			return nil, fmt.Errorf("archivelist: %w", err)
		}
		s.buf, s.cursor = es, next
		s.done = next == "" || len(es) == 0
	}
	if len(s.buf) == 0 {
		return nil, nil
	}
	return &s.buf[0], nil
}

// merge returns the first limit entries of the mailboxes' listings after
// q.Cursor, a message in several of them once, and the cursor after the last
// one if more follow. The one cursor positions every mailbox's listing: the
// Vault's cursors name a place in the order all its listings share.
func (l *Lister) merge(ctx context.Context, q listing.Query, mailboxes []string, limit int) ([]archive.Entry, string, error) {
	streams := make([]*stream, len(mailboxes))
	for i, mb := range mailboxes {
		streams[i] = &stream{mailbox: mb, cursor: q.Cursor}
	}
	var page []archive.Entry
	for len(page) < limit {
		var first *archive.Entry
		for _, s := range streams {
			e, err := l.head(ctx, s, q, limit)
			if err != nil {
				return nil, "", err
			}
			if e != nil && (first == nil || before(*e, *first)) {
				first = e
			}
		}
		if first == nil {
			return page, "", nil
		}
		e := *first
		// Every listing that holds e holds it at its head now: what came
		// before it in that listing came before it everywhere.
		for _, s := range streams {
			if len(s.buf) > 0 && s.buf[0].ID == e.ID {
				s.buf = s.buf[1:]
			}
		}
		page = append(page, e)
	}
	for _, s := range streams {
		e, err := l.head(ctx, s, q, limit)
		if err != nil {
			return nil, "", err
		}
		if e != nil {
			return page, archive.CursorAfter(page[len(page)-1]), nil
		}
	}
	return page, "", nil
}

// openAll opens the manifest of every entry, parallelism at a time, and
// keeps only each one's bounded summary (listing.Summarize): a manifest can
// be megabytes (1,000 parts with long names), and a page of them must not
// be held at once.
func (l *Lister) openAll(ctx context.Context, entries []archive.Entry) ([]listing.Message, error) {
	msgs := make([]listing.Message, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("archivelist: %w", ctx.Err())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-l.sem }()
			m, err := l.open(ctx, e.ID)
			if err == nil && m.ID != e.ID {
				err = fmt.Errorf("manifest of %s names id %q: %w", e.ID, m.ID, sealer.ErrDecrypt)
			}
			if errs[i] = err; err == nil {
				msgs[i] = toMessage(m, e)
			}
		}()
	}
	wg.Wait()
	out := make([]listing.Message, 0, len(entries))
	for i, e := range entries {
		switch err := errs[i]; {
		case err == nil:
			out = append(out, msgs[i])
		case errors.Is(err, archive.ErrNotFound):
			// Undone or removed since the index was read.
		case errors.Is(err, sealer.ErrDecrypt):
			l.log.Error("archivelist: stored message failed authentication; left out of the listing", "message_id", e.ID, "err", err)
		default:
			return nil, fmt.Errorf("archivelist: %w", err)
		}
	}
	return out, nil
}

// toMessage is the bounded summary of m, listed as entry e.
func toMessage(m *sealed.Manifest, e archive.Entry) listing.Message {
	return listing.Summarize(listing.Message{
		ID: m.ID, ReceivedAt: m.ReceivedAt, From: m.From, To: m.To, Size: m.Size,
		Header: m.Header, Parts: m.Parts, Cursor: archive.CursorAfter(e),
	})
}
