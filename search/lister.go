package search

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/searchquery"
)

// ErrUnavailable is wrapped by a listing's error while the catalog cannot
// be reached (not open yet, or down): the service's failure, not the
// client's (HTTP 503).
var ErrUnavailable = fmt.Errorf("search: catalog %w", listing.ErrUnavailable)

// Lister makes listings and searches from the catalog: the retrieval
// Lister of a daemon with a catalog. It opens each row's sealed summary and
// never calls the key service.
type Lister struct {
	Catalog Catalog
	Keys    Keys
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // for newer_than:, older_than:; nil: time.Now
}

// List returns one page, newest first. Readers (not q.All) see only rows
// whose envelope names one of their mailboxes.
func (l *Lister) List(ctx context.Context, q listing.Query) (listing.Page, error) {
	s := catalog.Search{Limit: q.Limit, Cursor: q.Cursor}
	if !q.All {
		s.Parties = make([]blind.Token, 0, len(q.Mailboxes))
		for _, mb := range q.Mailboxes {
			if n := archive.NormalizeAddress(mb); n != "" {
				s.Parties = append(s.Parties, blind.PartyToken(l.Keys.Token, n))
			}
		}
	}
	var where catalog.AllOf
	if !q.Since.IsZero() || !q.Until.IsZero() {
		where = append(where, catalog.Received{After: q.Since, Before: q.Until})
	}
	if strings.TrimSpace(q.Q) != "" {
		n, err := searchquery.Parse(q.Q, l.now())
		if err != nil {
			return listing.Page{}, fmt.Errorf("%w: %v", listing.ErrBadQuery, err)
		}
		e, err := Compile(n, l.Keys.Token)
		if err != nil {
			return listing.Page{}, err
		}
		where = append(where, e)
	}
	switch len(where) {
	case 0:
	case 1:
		s.Where = where[0]
	default:
		s.Where = where
	}
	res, err := l.Catalog.Search(ctx, s)
	switch {
	case err == nil:
	case errors.Is(err, catalog.ErrTooExpensive):
		return listing.Page{}, fmt.Errorf("%w: %v", listing.ErrBadQuery, err)
	case errors.Is(err, catalog.ErrBadCursor):
		return listing.Page{}, fmt.Errorf("%w: %v", listing.ErrBadCursor, err)
	case errors.Is(err, ErrUnavailable) || ctx.Err() != nil:
		return listing.Page{}, err
	default:
		return listing.Page{}, fmt.Errorf("search: list: %w", err)
	}
	page := listing.Page{NextCursor: res.Next, Count: res.Count, CountCapped: res.CountCapped,
		Messages: make([]listing.Message, 0, len(res.Rows))}
	for _, r := range res.Rows {
		m, err := openSummary(l.Keys.Summary, r)
		if err != nil {
			// A row that does not open is left out (the page may be short);
			// verify -repair rewrites it from the archive.
			l.logger().Error("catalog row left out of a listing", "id", r.ID, "err", err)
			continue
		}
		m.Cursor = catalog.CursorAfter(r) // lets retrieval cut a page that grows too large
		page.Messages = append(page.Messages, m)
	}
	return page, nil
}

func (l *Lister) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Lister) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.New(slog.DiscardHandler)
}
