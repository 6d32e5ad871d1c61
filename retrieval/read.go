package retrieval

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// maxIDBytes bounds a caller-supplied id before archive.ValidID sees it.
const maxIDBytes = 128

func validID(id string) bool {
	return id != "" && len(id) <= maxIDBytes && archive.ValidID(id)
}

// message is one archived message whose data key is unwrapped and whose
// manifest is open (package sealed does the opening and its checks). close
// clears the key.
type message struct {
	*sealed.Message
	id string
	m  *sealed.Manifest
}

// openMessage opens id: its metadata, data key and manifest. id must have
// passed validID.
func (h *handler) openMessage(ctx context.Context, id string) (*message, error) {
	msg, err := sealed.Open(ctx, h.vault, h.keys, id)
	if err != nil {
		return nil, err
	}
	return &message{Message: msg, id: id, m: msg.Manifest()}, nil
}

func (msg *message) close() { msg.Close() }

// reader returns plaintext bytes [off, off+n) of the message (n < 0: to the
// end), fetching only the chunks that cover them.
func (h *handler) reader(ctx context.Context, msg *message, off, n int64) (io.ReadCloser, error) {
	return msg.NewReader(ctx, off, n)
}

// CopyMessage writes archived message id, exactly as received, to w and
// returns the bytes written; it is the read path of the API for a caller
// that is not an HTTP client (mailvaultd get), which records the read in the
// audit log itself.
func CopyMessage(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, id string, w io.Writer) (int64, error) {
	if !validID(id) {
		return 0, fmt.Errorf("retrieval: %q is not an archive id", auditString(id))
	}
	n, err := sealed.Copy(ctx, v, keys, id, w)
	if err != nil {
		return n, fmt.Errorf("retrieval: %w", err)
	}
	return n, nil
}

// # Listing

// listQuery is a validated listing request.
type listQuery struct {
	mailboxes []string // normalised; "" alone lists every message
	since     time.Time
	until     time.Time
	limit     int
	after     *listCursor
}

// listCursor is the position after the last message of a page, in the order
// of the listing: newest first, then by id, descending. It is the API's
// opaque next_cursor.
type listCursor struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
}

func (c *listCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*listCursor, error) {
	if len(s) > 512 {
		return nil, errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("cursor is not base64url")
	}
	var c listCursor
	if err := json.Unmarshal(b, &c); err != nil || c.T.IsZero() || !validID(c.ID) {
		return nil, errors.New("cursor is malformed")
	}
	return &c, nil
}

// before reports whether a sorts before b: newer, or as new with a greater id.
func before(a, b archive.Entry) bool {
	if !a.ReceivedAt.Equal(b.ReceivedAt) {
		return a.ReceivedAt.After(b.ReceivedAt)
	}
	return a.ID > b.ID
}

// mailboxStream pages through the vault listing of one mailbox, skipping
// what lies at or before the cursor.
type mailboxStream struct {
	h       *handler
	q       *listQuery
	mailbox string
	until   time.Time
	buf     []archive.Entry
	cursor  string
	done    bool
}

// maxEmptyPages bounds how many pages of already-seen entries one stream
// skips in a request.
const maxEmptyPages = 64

func (s *mailboxStream) peek(ctx context.Context) (*archive.Entry, error) {
	for i := 0; len(s.buf) == 0 && !s.done; i++ {
		if i == maxEmptyPages {
			return nil, errors.New("listing: too many pages without a new entry")
		}
		es, next, err := s.h.vault.List(ctx, s.mailbox, s.q.since, s.until, s.q.limit+1, s.cursor)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		for _, e := range es {
			if s.q.after != nil && !before(archive.Entry{ID: s.q.after.ID, ReceivedAt: s.q.after.T}, e) {
				continue
			}
			s.buf = append(s.buf, e)
		}
		slices.SortStableFunc(s.buf, func(a, b archive.Entry) int {
			if before(a, b) {
				return -1
			}
			if before(b, a) {
				return 1
			}
			return 0
		})
		s.cursor = next
		s.done = next == "" || len(es) == 0
	}
	if len(s.buf) == 0 {
		return nil, nil
	}
	return &s.buf[0], nil
}

// listEntries returns one page of entries, merged over the query's
// mailboxes (a message to two of them appears once), and the cursor of the
// next page ("" if there is none).
func (h *handler) listEntries(ctx context.Context, q *listQuery) ([]archive.Entry, string, error) {
	until := q.until
	if q.after != nil {
		// The vault's until is exclusive: ask from just past the cursor's
		// time and skip what was served at that very time.
		resume := q.after.T.Add(time.Nanosecond)
		if until.IsZero() || resume.Before(until) {
			until = resume
		}
	}
	streams := make([]*mailboxStream, len(q.mailboxes))
	for i, mb := range q.mailboxes {
		streams[i] = &mailboxStream{h: h, q: q, mailbox: mb, until: until}
	}
	var page []archive.Entry
	seen := make(map[string]bool)
	for len(page) < q.limit {
		var best *mailboxStream
		var bestE *archive.Entry
		for _, s := range streams {
			e, err := s.peek(ctx)
			if err != nil {
				return nil, "", err
			}
			if e != nil && (bestE == nil || before(*e, *bestE)) {
				best, bestE = s, e
			}
		}
		if best == nil {
			return page, "", nil
		}
		e := *bestE
		best.buf = best.buf[1:]
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		page = append(page, e)
	}
	for _, s := range streams {
		for {
			e, err := s.peek(ctx)
			if err != nil {
				return nil, "", err
			}
			if e == nil {
				break
			}
			if !seen[e.ID] {
				last := page[len(page)-1]
				return page, (&listCursor{T: last.ReceivedAt, ID: last.ID}).encode(), nil
			}
			s.buf = s.buf[1:]
		}
	}
	return page, "", nil
}

// listedMessage is one message of a listing.
type listedMessage struct {
	entry archive.Entry
	m     *sealed.Manifest
}

// listParallelism bounds the manifests opened at once for a page (each
// costs a key-service call).
const listParallelism = 4

// openManifests opens the manifest of every entry that p may read. Messages
// that vanished since they were listed are left out; so is one that fails
// authentication, which is logged as an integrity failure. Any other error
// fails the page.
func (h *handler) openManifests(ctx context.Context, p *principal, entries []archive.Entry) ([]listedMessage, error) {
	out := make([]listedMessage, len(entries))
	errs := make([]error, len(entries))
	sem := make(chan struct{}, listParallelism)
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !validID(e.ID) {
				errs[i] = fmt.Errorf("listing returned a malformed id %q", e.ID)
				return
			}
			msg, err := h.openMessage(ctx, e.ID)
			if err != nil {
				errs[i] = err
				return
			}
			msg.close()
			out[i] = listedMessage{entry: e, m: msg.m}
		}()
	}
	wg.Wait()
	var page []listedMessage
	for i, lm := range out {
		switch err := errs[i]; {
		case err == nil:
		case errors.Is(err, archive.ErrNotFound):
			continue
		case errors.Is(err, sealer.ErrDecrypt):
			h.log.Error("retrieval: stored message failed authentication; left out of the listing", "message_id", entries[i].ID, "err", err)
			continue
		default:
			return nil, err
		}
		if !p.mayRead(lm.m) {
			// The index put it in one of p's mailboxes, but its envelope
			// does not say so: trust the sealed envelope.
			h.log.Warn("retrieval: listed message not readable by its mailbox owner; left out", "message_id", lm.entry.ID, "user", p.name)
			continue
		}
		page = append(page, lm)
	}
	return page, nil
}

// mailboxesFor returns the mailboxes to list for p, given the requested
// mailbox ("" for all of p's). ok is false if p may not list it.
func mailboxesFor(p *principal, requested string) (mailboxes []string, ok bool) {
	if requested != "" {
		n := archive.NormalizeAddress(requested)
		if p.role == RoleAuditor || p.hasMailbox(n) {
			return []string{n}, true
		}
		return nil, false
	}
	if p.role == RoleAuditor {
		return []string{""}, true
	}
	return slices.Clone(p.mailboxes), true
}
