// Package export owns the two archive formats a set of messages is exported
// in — mboxrd and zip — and the walk that fills one from a listing: it
// pages through a listing, opens each message the caller may read and
// streams it, exactly as received, into the archive file.
//
// export never holds a whole export (or a whole message) in memory, never
// decides who may read what (the caller's May does) and never writes the
// audit log itself (the caller's Record does, once per message).
package export

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// Format is an export's file format.
type Format string

const (
	Mbox Format = "mbox" // mboxrd: From_ lines, ">From " quoting
	Zip  Format = "zip"  // one <id>.eml per message
)

// ParseFormat accepts "mbox" or "zip".
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Mbox, Zip:
		return f, nil
	}
	return "", fmt.Errorf("export: format %q: want mbox or zip", s)
}

// FormatOfFile is the format a file name's extension asks for.
func FormatOfFile(name string) (Format, error) {
	return ParseFormat(strings.TrimPrefix(path.Ext(name), "."))
}

// ContentType is the media type of an export in f.
func (f Format) ContentType() string {
	if f == Zip {
		return "application/zip"
	}
	return "application/mbox"
}

// MaxMessages is the most messages one export holds. An export that would
// hold more is refused before anything is written (ErrTooMany): the caller
// narrows the query (a date range, say) and exports in several goes.
const MaxMessages = 10000

// ErrTooMany is wrapped by Collect's error when the listing holds more than
// its max messages.
var ErrTooMany = errors.New("export: too many messages")

// pageSize is how many messages Collect asks the lister for at a time.
const pageSize = 200

// Lister makes one page of a listing (retrieval's Lister, the search
// package's catalog Lister).
type Lister interface {
	List(ctx context.Context, q listing.Query) (listing.Page, error)
}

// Collect pages through the listing q (its Limit and Cursor are Collect's)
// and returns the ids of the messages for which may (nil: all) holds,
// newest first, at most max of them. More than max is an error wrapping
// ErrTooMany, found before any message is opened.
func Collect(ctx context.Context, l Lister, q listing.Query, max int, may func(from string, to []string) bool) ([]string, error) {
	q.Limit, q.Cursor = pageSize, ""
	var ids []string
	for {
		page, err := l.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			if may != nil && !may(m.From, m.To) {
				continue
			}
			if len(ids) == max {
				return nil, fmt.Errorf("%w: more than %d match; narrow the query", ErrTooMany, max)
			}
			ids = append(ids, m.ID)
		}
		if page.NextCursor == "" {
			return ids, nil
		}
		q.Cursor = page.NextCursor
	}
}

// Source opens archived messages.
type Source struct {
	Vault *archive.Vault
	Keys  sealer.KeyProvider
}

// ErrNotReadable is the error of a message that May refused.
var ErrNotReadable = errors.New("export: message not readable by the caller")

// Each writes the messages ids into w, in order, and calls record once per
// message with the plaintext bytes written and the error (nil: written
// whole); an error from record (the audit log failed) ends the export. may (nil: all) is checked again against each message's sealed
// envelope; a message it refuses, or one that has vanished since the
// listing, is left out (record still hears of it). Any other error ends the
// export: w then holds a partial archive, and the caller must not pass it
// off as whole.
func (s Source) Each(ctx context.Context, w *Writer, ids []string, may func(from string, to []string) bool, record func(id string, n int64, err error) error) error {
	for _, id := range ids {
		n, err := s.one(ctx, w, id, may)
		if rerr := record(id, n, err); rerr != nil {
			return fmt.Errorf("export: recording %s: %w", id, rerr)
		}
		switch {
		case err == nil, errors.Is(err, ErrNotReadable), errors.Is(err, archive.ErrNotFound):
		default:
			return err
		}
	}
	return nil
}

func (s Source) one(ctx context.Context, w *Writer, id string, may func(from string, to []string) bool) (int64, error) {
	msg, err := sealed.Open(ctx, s.Vault, s.Keys, id)
	if err != nil {
		return 0, err
	}
	defer msg.Close()
	m := msg.Manifest()
	if may != nil && !may(m.From, m.To) {
		return 0, ErrNotReadable
	}
	rc, err := msg.NewReader(ctx, 0, -1)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	mw, err := w.Begin(id, m.From, m.ReceivedAt)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(mw, rc)
	if err == nil && n != msg.Size() {
		err = fmt.Errorf("export: %s: read %d bytes, want %d", id, n, msg.Size())
	}
	if err != nil {
		return n, fmt.Errorf("export: %s: %w", id, err)
	}
	return n, w.end()
}

// Writer writes an export archive: Begin a message, write its bytes, Begin
// the next; Close ends the archive (it does not close the underlying
// writer).
type Writer struct {
	format Format
	mbox   *mboxWriter
	zip    *zip.Writer
	open   bool
}

// NewWriter returns a Writer of format f onto w.
func NewWriter(w io.Writer, f Format) *Writer {
	if f == Zip {
		return &Writer{format: f, zip: zip.NewWriter(w)}
	}
	return &Writer{format: Mbox, mbox: &mboxWriter{w: w}}
}

// Begin starts message id, received from envelope sender from at t, and
// returns the writer its bytes (as received) go to.
func (w *Writer) Begin(id, from string, t time.Time) (io.Writer, error) {
	if err := w.end(); err != nil {
		return nil, err
	}
	w.open = true
	if w.zip != nil {
		return w.zip.CreateHeader(&zip.FileHeader{Name: id + ".eml", Method: zip.Deflate, Modified: t.UTC()})
	}
	return w.mbox, w.mbox.begin(from, t)
}

// end finishes the message begun last, if any.
func (w *Writer) end() error {
	if !w.open {
		return nil
	}
	w.open = false
	if w.mbox != nil {
		return w.mbox.end()
	}
	return nil
}

// Close ends the archive: a zip's central directory.
func (w *Writer) Close() error {
	if err := w.end(); err != nil {
		return err
	}
	if w.zip != nil {
		return w.zip.Close()
	}
	return nil
}

// mboxWriter writes mboxrd: each message opens with a From_ line ("From
// SENDER DATE", asctime in UTC; MAILER-DAEMON for the null sender), every
// line of it that matches ^>*From  gains one more '>', and it ends with a
// blank line (a message that does not end in a newline gets one first, the
// one byte an mbox cannot give back). Reading undoes the quoting, so that
// each message comes back byte for byte.
type mboxWriter struct {
	w io.Writer
	// At the start of a line: the '>'s and the prefix of "From " seen and
	// not yet written, while they may still be a line to quote.
	atStart bool
	gts     int
	from    int
	last    byte // the last byte of the message written so far
	any     bool
}

const fromPrefix = "From "

func (m *mboxWriter) begin(sender string, t time.Time) error {
	if sender == "" || strings.ContainsAny(sender, " \t\r\n") {
		// The From_ line is split at spaces: a sender with one (a quoted
		// local part) would break it; it is informational only.
		sender = "MAILER-DAEMON"
	}
	m.atStart, m.gts, m.from, m.any = true, 0, 0, false
	_, err := fmt.Fprintf(m.w, "From %s %s\n", sender, t.UTC().Format(time.ANSIC))
	return err
}

func (m *mboxWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if m.atStart {
			c := p[0]
			switch {
			case c == '>' && m.from == 0:
				m.gts++
				p = p[1:]
				continue
			case c == fromPrefix[m.from]:
				m.from++
				p = p[1:]
				if m.from == len(fromPrefix) {
					// A line to quote: one more '>'.
					if err := m.flushPrefix(1); err != nil {
						return total - len(p), err
					}
					m.atStart = false
				}
				continue
			}
			if err := m.flushPrefix(0); err != nil {
				return total - len(p), err
			}
			m.atStart = false
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		if _, err := m.w.Write(chunk); err != nil {
			return total - len(p), err
		}
		m.last, m.any = chunk[len(chunk)-1], true
		p = p[len(chunk):]
		m.atStart = i >= 0
	}
	return total, nil
}

// flushPrefix writes the held '>'s (plus extra) and the held part of
// "From ".
func (m *mboxWriter) flushPrefix(extra int) error {
	if m.gts+m.from == 0 && extra == 0 {
		return nil
	}
	n := m.gts + extra
	for n > 0 {
		k := min(n, 512)
		if _, err := m.w.Write(bytes.Repeat([]byte{'>'}, k)); err != nil {
			return err
		}
		n -= k
	}
	if m.from > 0 {
		if _, err := io.WriteString(m.w, fromPrefix[:m.from]); err != nil {
			return err
		}
	}
	m.last, m.any = '>', true
	if m.from > 0 {
		m.last = fromPrefix[m.from-1]
	}
	m.gts, m.from = 0, 0
	return nil
}

func (m *mboxWriter) end() error {
	if err := m.flushPrefix(0); err != nil {
		return err
	}
	sep := "\n"
	if m.any && m.last != '\n' {
		sep = "\n\n"
	}
	_, err := io.WriteString(m.w, sep)
	return err
}
