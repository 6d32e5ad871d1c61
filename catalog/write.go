package catalog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailvault/mailvaultd/blind"
)

// The receive times a row may have: those int64 nanoseconds since 1970 can
// hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func validID(id string) bool {
	// PostgreSQL text cannot hold NUL.
	return id != "" && len(id) <= maxIDLen && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

func validateRow(r *Row) error {
	switch {
	case !validID(r.ID):
		return fmt.Errorf("%w: id %q", ErrInvalidRow, r.ID)
	case r.ReceivedAt.IsZero() || r.ReceivedAt.Before(minTime) || r.ReceivedAt.After(maxTime):
		return fmt.Errorf("%w %s: receive time %v out of range", ErrInvalidRow, r.ID, r.ReceivedAt)
	case r.Size < 0:
		return fmt.Errorf("%w %s: negative size", ErrInvalidRow, r.ID)
	}
	return nil
}

// dedupTokens returns the distinct tokens of ts, sorted (as int64, the
// database's view), without changing ts.
func dedupTokens(ts []blind.Token) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = int64(t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func packTokens(ts []int64) []byte {
	b := make([]byte, 8*len(ts))
	for i, t := range ts {
		binary.BigEndian.PutUint64(b[8*i:], uint64(t))
	}
	return b
}

func unpackTokens(b []byte) []int64 {
	ts := make([]int64, len(b)/8)
	for i := range ts {
		ts[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
	}
	return ts
}

// Put records r, replacing any row with its id and all of that row's
// tokens, in one transaction.
func (c *Catalog) Put(ctx context.Context, r Row) error {
	return c.PutBatch(ctx, []Row{r})
}

// PutBatch records rows as Put does, all in one transaction (a rebuild's
// unit of work: one commit per batch instead of per row). A later row with
// the id of an earlier one in the batch replaces it.
func (c *Catalog) PutBatch(ctx context.Context, rows []Row) error {
	for i := range rows {
		if err := validateRow(&rows[i]); err != nil {
			return fmt.Errorf("catalog: put: %w", err)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return c.putBatch(ctx, rows, false)
}

// putBatch writes validated rows in one transaction; staged sends their
// postings to the Loader's staging table.
func (c *Catalog) putBatch(ctx context.Context, rows []Row, staged bool) error {
	unlock := c.lockWrites()
	defer unlock()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: put: %w", err)
	}
	defer tx.Rollback()
	w, err := c.prepareWriter(ctx, tx, staged)
	if err != nil {
		return fmt.Errorf("catalog: put: %w", err)
	}
	defer w.close()
	for i := range rows {
		if err := w.put(ctx, &rows[i]); err != nil {
			return fmt.Errorf("catalog: put %s: %w", rows[i].ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: put: %w", err)
	}
	return nil
}

// writer holds a transaction's prepared statements.
type writer struct {
	d                          dialect
	lookup, delMsg, delPosting *sql.Stmt
	insMsg, insPostings        *sql.Stmt
	// delStaged is set for a Loader's writer, whose new postings go to the
	// staging table: a row replaced within the load loses its staged
	// postings there.
	delStaged *sql.Stmt
}

// prepareWriter prepares a writer's statements in tx; staged writes new
// postings to the Loader's staging table instead of postings.
func (c *Catalog) prepareWriter(ctx context.Context, tx *sql.Tx, staged bool) (*writer, error) {
	w := &writer{d: c.dialect}
	into := "postings"
	if staged {
		into = stagingTable
	}
	stmts := []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&w.lookup, "SELECT seq, received_at, tokens FROM messages WHERE id = ?"},
		{&w.delMsg, "DELETE FROM messages WHERE seq = ?"},
		{&w.delPosting, "DELETE FROM postings WHERE received_at = ? AND msg = ? AND token IN " + c.dialect.tokenSet},
		{&w.insMsg, "INSERT INTO messages (id, received_at, size, flags, summary, tokens) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq"},
		{&w.insPostings, "INSERT INTO " + into + " (token, received_at, msg) SELECT t, ?, ? FROM " + c.dialect.tokenSet + " AS s"},
	}
	if staged {
		stmts = append(stmts, struct {
			stmt  **sql.Stmt
			query string
		}{&w.delStaged, "DELETE FROM " + stagingTable + " WHERE msg = ?"})
	}
	for _, s := range stmts {
		st, err := tx.PrepareContext(ctx, c.dialect.rebind(s.query))
		if err != nil {
			w.close()
			return nil, err
		}
		*s.stmt = st
	}
	return w, nil
}

func (w *writer) close() {
	for _, s := range []*sql.Stmt{w.lookup, w.delMsg, w.delPosting, w.insMsg, w.insPostings, w.delStaged} {
		if s != nil {
			s.Close()
		}
	}
}

// remove deletes the row with id and its postings; found reports whether
// there was one.
func (w *writer) remove(ctx context.Context, id string) (found bool, err error) {
	var (
		seq, at int64
		packed  []byte
	)
	switch err := w.lookup.QueryRowContext(ctx, id).Scan(&seq, &at, &packed); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	if old := unpackTokens(packed); len(old) > 0 {
		if _, err := w.delPosting.ExecContext(ctx, at, seq, w.d.tokenArg(old)); err != nil {
			return false, err
		}
	}
	if w.delStaged != nil {
		if _, err := w.delStaged.ExecContext(ctx, seq); err != nil {
			return false, err
		}
	}
	if _, err := w.delMsg.ExecContext(ctx, seq); err != nil {
		return false, err
	}
	return true, nil
}

func (w *writer) put(ctx context.Context, r *Row) error {
	if _, err := w.remove(ctx, r.ID); err != nil {
		return err
	}
	tokens := dedupTokens(r.Tokens)
	at := r.ReceivedAt.UnixNano()
	summary := r.Summary
	if summary == nil {
		summary = []byte{} // NOT NULL on both backends
	}
	var seq int64
	if err := w.insMsg.QueryRowContext(ctx, r.ID, at, r.Size, int64(r.Flags), summary, packTokens(tokens)).Scan(&seq); err != nil {
		return err
	}
	if len(tokens) > 0 {
		if _, err := w.insPostings.ExecContext(ctx, at, seq, w.d.tokenArg(tokens)); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the row with id and its tokens. A missing row is
// ErrNotFound.
func (c *Catalog) Delete(ctx context.Context, id string) error {
	unlock := c.lockWrites()
	defer unlock()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: delete %s: %w", id, err)
	}
	defer tx.Rollback()
	w, err := c.prepareWriter(ctx, tx, false)
	if err != nil {
		return fmt.Errorf("catalog: delete %s: %w", id, err)
	}
	defer w.close()
	found, err := w.remove(ctx, id)
	if err != nil {
		return fmt.Errorf("catalog: delete %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("catalog: delete %s: %w", id, ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: delete %s: %w", id, err)
	}
	return nil
}

// Get returns the row with id, with its tokens (sorted, as the database
// holds them).
func (c *Catalog) Get(ctx context.Context, id string) (Row, error) {
	var (
		r            = Row{ID: id}
		at, flags    int64
		packed, summ []byte
	)
	err := c.db.QueryRowContext(ctx, c.dialect.rebind(
		"SELECT received_at, size, flags, summary, tokens FROM messages WHERE id = ?"), id).
		Scan(&at, &r.Size, &flags, &summ, &packed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Row{}, fmt.Errorf("catalog: get %s: %w", id, ErrNotFound)
	case err != nil:
		return Row{}, fmt.Errorf("catalog: get %s: %w", id, err)
	}
	r.ReceivedAt = time.Unix(0, at).UTC()
	r.Flags = Flags(flags)
	r.Summary = summ
	for _, t := range unpackTokens(packed) {
		r.Tokens = append(r.Tokens, blind.Token(t))
	}
	return r, nil
}

// SetFlags sets the flags in set and then clears those in clear on the row
// with id, in one statement (a concurrent SetFlags of other flags is not
// lost). A missing row is ErrNotFound.
func (c *Catalog) SetFlags(ctx context.Context, id string, set, clear Flags) error {
	unlock := c.lockWrites()
	defer unlock()
	res, err := c.db.ExecContext(ctx, c.dialect.rebind(
		"UPDATE messages SET flags = ((flags | CAST(? AS BIGINT)) & ~CAST(? AS BIGINT)) WHERE id = ?"),
		int64(set), int64(clear), id)
	if err != nil {
		return fmt.Errorf("catalog: set flags %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("catalog: set flags %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("catalog: set flags %s: %w", id, ErrNotFound)
	}
	return nil
}

// IDs returns up to limit ids greater than after, in byte order (for
// `catalog verify`, which walks the catalog beside the archive's listing).
func (c *Catalog) IDs(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := c.db.QueryContext(ctx, c.dialect.rebind(
		"SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?"), after, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("catalog: ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: ids: %w", err)
	}
	return ids, nil
}
