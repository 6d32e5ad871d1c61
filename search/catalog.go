package search

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/sealed"
)

// Catalog is what search needs of a catalog (*catalog.Catalog, or a handle
// the daemon opens later).
type Catalog interface {
	Put(ctx context.Context, r catalog.Row) error
	PutBatch(ctx context.Context, rows []catalog.Row) error
	Get(ctx context.Context, id string) (catalog.Row, error)
	Delete(ctx context.Context, id string) error
	IDs(ctx context.Context, after string, limit int) ([]string, error)
	Search(ctx context.Context, s catalog.Search) (catalog.Result, error)
}

var _ Catalog = (*catalog.Catalog)(nil)

// Keys are the catalog's two keys, both derived from the vault's index
// secret: the token key (blind) and the summary key (catalog).
type Keys struct {
	Token   *blind.Key
	Summary *catalog.SummaryBox
}

// NewKeys derives the catalog keys from the 32-byte index secret. The
// caller may clear the secret afterwards; Clear wipes the derived keys.
func NewKeys(indexSecret []byte) (Keys, error) {
	box, err := catalog.NewSummaryBox(indexSecret)
	if err != nil {
		return Keys{}, fmt.Errorf("search: keys: %w", err)
	}
	return Keys{Token: blind.NewKey(indexSecret), Summary: box}, nil
}

// Clear wipes both keys.
func (k Keys) Clear() {
	if k.Token != nil {
		k.Token.Clear()
	}
	if k.Summary != nil {
		k.Summary.Clear()
	}
}

// summaryOf is the bounded listing summary of m, the plaintext a row seals.
func summaryOf(m *sealed.Manifest) listing.Message {
	return listing.Summarize(listing.Message{
		ID: m.ID, ReceivedAt: m.ReceivedAt, From: m.From, To: m.To, Size: m.Size,
		Header: m.Header, Parts: m.Parts,
	})
}

// rowOf is the catalog row of an archived message: its manifest and what
// the extractor made of its bytes.
func rowOf(m *sealed.Manifest, x blind.Result, box *catalog.SummaryBox) (catalog.Row, error) {
	plain, err := json.Marshal(summaryOf(m))
	if err != nil {
		return catalog.Row{}, fmt.Errorf("search: summary %s: %w", m.ID, err)
	}
	var f catalog.Flags
	if x.Summary.HasAttachment {
		f |= catalog.FlagAttachment
	}
	if m.Broken != "" {
		f |= catalog.FlagBrokenMIME
	}
	row := catalog.Row{ID: m.ID, ReceivedAt: m.ReceivedAt, Size: m.Size, Flags: f, Tokens: x.Tokens,
		Summary: box.Seal(m.ID, plain)}
	clear(plain)
	return row, nil
}

// openSummary opens a row's summary back into a listing.Message.
func openSummary(box *catalog.SummaryBox, r catalog.Row) (listing.Message, error) {
	plain, err := box.Open(r.ID, r.Summary)
	if err != nil {
		return listing.Message{}, fmt.Errorf("search: open summary %s: %w", r.ID, err)
	}
	defer clear(plain)
	var m listing.Message
	if err := json.Unmarshal(plain, &m); err != nil {
		return listing.Message{}, fmt.Errorf("search: decode summary %s: %w", r.ID, err)
	}
	if m.ID != r.ID {
		return listing.Message{}, fmt.Errorf("search: summary of %s names %s", r.ID, m.ID)
	}
	return m, nil
}

// putTimeout bounds the synchronous Put of a delivery's row: past it the
// row goes to the retry queue and the delivery is answered.
const putTimeout = 3 * time.Second
