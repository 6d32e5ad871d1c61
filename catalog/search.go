package catalog

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mailvault/mailvaultd/blind"
)

// probeCap bounds the count of one token's postings that Search reads to
// choose its driving term: a token with more is "common", and among common
// tokens any drives as well as another (their co-occurrence decides).
const probeCap = 4096

// cursorVersion is the first byte of every cursor.
const cursorVersion = 1

// Search runs one page of s, newest first.
//
// # Plan
//
// The page is one SQL statement with bound parameters only. It walks one
// posting list newest first — the driver — and checks everything else per
// candidate with EXISTS/NOT EXISTS point lookups on the postings key. The
// driver is the cheapest of: each positive HasToken of the top-level AllOf,
// each top-level AnyOf of HasTokens only (a union of lists), and the
// Parties union, costed by a bounded count of their postings within the
// top-level receive-time range. Without any, it walks the messages in
// listing order. The receive-time range of the top-level AllOf bounds the
// driver's scan on both ends; the cursor (receive time, id) seeks into it.
//
// # Work caps
//
// An Expr may have at most MaxLeaves leaves and MaxDepth levels, a Search
// at most MaxParties parties; past those Search fails with ErrTooExpensive
// before touching the database. Every search (page and count) runs under
// the catalog's SearchTimeout; one that runs out fails with
// ErrTooExpensive too. The count stops at CountCap.
func (c *Catalog) Search(ctx context.Context, s Search) (Result, error) {
	limit := s.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if err := checkCost(s); err != nil {
		return Result{}, err
	}
	var cur *cursor
	if s.Cursor != "" {
		cc, err := decodeCursor(s.Cursor)
		if err != nil {
			return Result{}, err
		}
		cur = &cc
	}
	if s.Parties != nil && len(s.Parties) == 0 {
		return Result{}, nil
	}

	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.search(sctx, s, cur, limit)
	if err != nil {
		if ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
			return Result{}, fmt.Errorf("%w: ran longer than %v", ErrTooExpensive, c.timeout)
		}
		return Result{}, fmt.Errorf("catalog: search: %w", err)
	}
	return res, nil
}

func (c *Catalog) search(ctx context.Context, s Search, cur *cursor, limit int) (Result, error) {
	p, err := c.plan(ctx, s)
	if err != nil {
		return Result{}, err
	}
	var q query
	q.add("SELECT m.id, m.received_at, m.size, m.flags, m.summary ")
	hi := p.hi
	if cur != nil {
		hi = min(hi, cur.at) // the walk starts at the cursor
	}
	top := 0
	if len(p.rest) == 0 && p.parties == nil {
		top = limit + 1
	}
	p.from(&q, hi, top, cur != nil)
	if cur != nil {
		q.add(" AND "+p.order+" <= ? AND ("+p.order+" < ? OR m.id > ?)", cur.at, cur.at, cur.id)
	}
	p.filter(&q)
	q.add(" ORDER BY "+p.order+" DESC, m.id LIMIT ?", limit+1)

	rows, err := c.db.QueryContext(ctx, c.dialect.rebind(q.sql.String()), q.args...)
	if err != nil {
		return Result{}, err
	}
	defer rows.Close()
	var res Result
	for rows.Next() {
		var (
			r         Row
			at, flags int64
		)
		if err := rows.Scan(&r.ID, &at, &r.Size, &flags, &r.Summary); err != nil {
			return Result{}, err
		}
		r.ReceivedAt = time.Unix(0, at).UTC()
		r.Flags = Flags(flags)
		res.Rows = append(res.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return Result{}, err
	}
	rows.Close()
	if len(res.Rows) > limit {
		res.Rows = res.Rows[:limit]
		last := res.Rows[limit-1]
		res.Next = CursorAfter(last)
	}

	if cur == nil && res.Next == "" {
		// The first page holds every match: it is the count.
		res.Count = len(res.Rows)
		return res, nil
	}
	var cq query
	cq.add("SELECT count(*) FROM (SELECT 1 ")
	p.from(&cq, p.hi, 0, false)
	p.filter(&cq)
	cq.add(" LIMIT ?) x", CountCap+1)
	var n int
	if err := c.db.QueryRowContext(ctx, c.dialect.rebind(cq.sql.String()), cq.args...).Scan(&n); err != nil {
		return Result{}, err
	}
	res.Count, res.CountCapped = min(n, CountCap), n > CountCap
	return res, nil
}

// query is SQL under construction: its text with ?-placeholders and their
// arguments, in order.
type query struct {
	sql  strings.Builder
	args []any
}

func (q *query) add(sql string, args ...any) {
	q.sql.WriteString(sql)
	q.args = append(q.args, args...)
}

// plan is a search's driver and its remaining conditions.
type plan struct {
	driver  []int64 // the tokens whose posting lists are walked; nil: the messages table
	rest    []Expr  // the top-level conjuncts the driver does not already ensure
	parties []int64 // to check per row; nil when no restriction or when the parties drive
	lo, hi  int64   // receive-time range of the driver's walk, [lo, hi]
	order   string  // the column rows come out newest first by
}

func (c *Catalog) plan(ctx context.Context, s Search) (*plan, error) {
	p := &plan{lo: math.MinInt64, hi: math.MaxInt64}
	conj := conjuncts(s.Where)
	for _, e := range conj {
		if r, ok := e.(Received); ok {
			lo, hi, empty := r.bounds()
			if empty {
				lo, hi = 1, 0
			}
			p.lo, p.hi = max(p.lo, lo), min(p.hi, hi)
		}
	}
	parties := dedupTokens(s.Parties)

	// The candidates for the driver: -1 stands for the parties.
	type candidate struct {
		conj   int
		tokens []int64
	}
	var cands []candidate
	for i, e := range conj {
		switch e := e.(type) {
		case HasToken:
			cands = append(cands, candidate{i, []int64{int64(e)}})
		case AnyOf:
			var ts []blind.Token
			for _, a := range e {
				t, ok := a.(HasToken)
				if !ok {
					ts = nil
					break
				}
				ts = append(ts, blind.Token(t))
			}
			if len(ts) > 0 {
				cands = append(cands, candidate{i, dedupTokens(ts)})
			}
		}
	}
	if s.Parties != nil {
		cands = append(cands, candidate{-1, parties})
	}
	best, bestCost := -1, math.MaxInt
	if len(cands) > 1 {
		cost := map[int64]int{}
		for ci, cd := range cands {
			total := 0
			for _, t := range cd.tokens {
				n, ok := cost[t]
				if !ok {
					var err error
					if n, err = c.probe(ctx, t, p.lo, p.hi); err != nil {
						return nil, err
					}
					cost[t] = n
				}
				total += n
			}
			if total < bestCost {
				best, bestCost = ci, total
			}
		}
	} else if len(cands) == 1 {
		best = 0
	}

	skip := -2
	if best >= 0 {
		p.driver = cands[best].tokens
		skip = cands[best].conj
	}
	for i, e := range conj {
		if i != skip {
			p.rest = append(p.rest, e)
		}
	}
	if s.Parties != nil && skip != -1 {
		p.parties = parties
	}
	if p.driver == nil {
		p.order = "m.received_at"
	} else {
		p.order = "d.received_at"
	}
	return p, nil
}

// probe counts t's postings in [lo, hi], up to probeCap.
func (c *Catalog) probe(ctx context.Context, t, lo, hi int64) (int, error) {
	var n int
	err := c.db.QueryRowContext(ctx, c.dialect.rebind(
		"SELECT count(*) FROM (SELECT 1 FROM postings WHERE token = ? AND received_at >= ? AND received_at <= ? LIMIT ?) x"),
		t, lo, hi, probeCap).Scan(&n)
	return n, err
}

// from writes the FROM clause, the driver joined to its messages, and a
// WHERE clause the caller extends with " AND …". The driver walks
// [p.lo, hi]; top > 0 says that only the newest top rows are wanted and
// that no condition beyond the driver (and the cursor, if cursored)
// applies.
func (p *plan) from(q *query, hi int64, top int, cursored bool) {
	switch len(p.driver) {
	case 0:
		q.add("FROM messages m")
		q.add(" WHERE m.received_at >= ? AND m.received_at <= ?", p.lo, hi)
		return
	case 1:
		q.add("FROM postings d JOIN messages m ON m.seq = d.msg")
		q.add(" WHERE d.token = ? AND d.received_at >= ? AND d.received_at <= ?", p.driver[0], p.lo, hi)
		return
	}
	// A union of posting lists, each message once: an arm skips the
	// messages an earlier arm's token already yields.
	q.add("FROM (")
	for i, t := range p.driver {
		if i > 0 {
			q.add(" UNION ALL ")
		}
		q.add("SELECT a.received_at, a.msg FROM postings a WHERE a.token = ? AND a.received_at >= ? AND a.received_at <= ?", t, p.lo, hi)
		if top > 0 {
			// Only the newest top rows of the union are wanted and nothing
			// else filters them: an arm's rows older than its own top-th
			// newest posting cannot be among them (that arm alone has top
			// newer ones), so each arm stops there, ties included, instead
			// of the whole lists being sorted.
			// With a cursor, rows at its own time may be ones already
			// seen: count only those strictly older (all rows at the
			// cursor's time stay in).
			bhi := hi
			if cursored && bhi > math.MinInt64 {
				bhi--
			}
			q.add(" AND a.received_at >= COALESCE((SELECT c.received_at FROM postings c WHERE c.token = ? AND c.received_at >= ? AND c.received_at <= ? ORDER BY c.received_at DESC LIMIT 1 OFFSET ?), ?)",
				t, p.lo, bhi, top-1, p.lo)
		}
		if i > 0 {
			q.add(" AND NOT EXISTS (SELECT 1 FROM postings b WHERE b.token IN (")
			for j, e := range p.driver[:i] {
				if j > 0 {
					q.add(", ")
				}
				q.add("?", e)
			}
			q.add(") AND b.received_at = a.received_at AND b.msg = a.msg)")
		}
	}
	q.add(") d JOIN messages m ON m.seq = d.msg WHERE 1=1")
}

// filter writes the per-row conditions, each starting " AND ".
func (p *plan) filter(q *query) {
	for _, e := range p.rest {
		q.add(" AND ")
		compile(q, e)
	}
	if p.parties != nil {
		q.add(" AND EXISTS (SELECT 1 FROM postings p WHERE p.token IN (")
		for i, t := range p.parties {
			if i > 0 {
				q.add(", ")
			}
			q.add("?", t)
		}
		q.add(") AND p.received_at = m.received_at AND p.msg = m.seq)")
	}
}

// compile writes e as a boolean SQL expression over the messages row m.
func compile(q *query, e Expr) {
	switch e := e.(type) {
	case nil:
		q.add("1=1")
	case AllOf:
		if len(e) == 0 {
			q.add("1=1")
			return
		}
		q.add("(")
		for i, a := range e {
			if i > 0 {
				q.add(" AND ")
			}
			compile(q, a)
		}
		q.add(")")
	case AnyOf:
		if len(e) == 0 {
			q.add("1=0")
			return
		}
		q.add("(")
		for i, a := range e {
			if i > 0 {
				q.add(" OR ")
			}
			compile(q, a)
		}
		q.add(")")
	case Not:
		q.add("NOT (")
		compile(q, e.E)
		q.add(")")
	case HasToken:
		q.add("EXISTS (SELECT 1 FROM postings p WHERE p.token = ? AND p.received_at = m.received_at AND p.msg = m.seq)", int64(e))
	case HasFlags:
		q.add("(m.flags & ?) = ?", int64(e), int64(e))
	case Received:
		lo, hi, empty := e.bounds()
		if empty {
			q.add("1=0")
			return
		}
		q.add("(m.received_at >= ? AND m.received_at <= ?)", lo, hi)
	case SizeRange:
		q.add("(m.size >= ?", e.Min)
		if e.Max > 0 {
			q.add(" AND m.size < ?", e.Max)
		}
		q.add(")")
	default:
		panic(fmt.Sprintf("catalog: compile: unchecked Expr %T", e)) // checkCost rejects unknown kinds first
	}
}

// bounds is r as an inclusive range of Unix nanoseconds; empty reports
// that no representable time is in it.
func (r Received) bounds() (lo, hi int64, empty bool) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !r.After.IsZero() {
		if r.After.After(maxTime) {
			return 0, 0, true
		}
		if r.After.After(minTime) {
			lo = r.After.UnixNano()
		}
	}
	if !r.Before.IsZero() {
		if !r.Before.After(minTime) {
			return 0, 0, true
		}
		if !r.Before.After(maxTime) {
			hi = r.Before.UnixNano() - 1
		}
	}
	return lo, hi, lo > hi
}

// conjuncts flattens nested top-level AllOfs into one list.
func conjuncts(e Expr) []Expr {
	switch e := e.(type) {
	case nil:
		return nil
	case AllOf:
		var out []Expr
		for _, a := range e {
			out = append(out, conjuncts(a)...)
		}
		return out
	}
	return []Expr{e}
}

// checkCost enforces the caps a search is checked against before it runs.
func checkCost(s Search) error {
	if len(s.Parties) > MaxParties {
		return fmt.Errorf("%w: %d parties, at most %d", ErrTooExpensive, len(s.Parties), MaxParties)
	}
	leaves := 0
	var walk func(e Expr, depth int) error
	walk = func(e Expr, depth int) error {
		if depth > MaxDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrTooExpensive, MaxDepth)
		}
		var kids []Expr
		switch e := e.(type) {
		case nil:
			if depth > 0 {
				return fmt.Errorf("catalog: search: nil Expr inside a tree")
			}
		case AllOf:
			kids = e
		case AnyOf:
			kids = e
		case Not:
			if e.E == nil {
				return fmt.Errorf("catalog: search: Not of nil")
			}
			kids = []Expr{e.E}
		case HasToken, HasFlags, Received, SizeRange:
			if leaves++; leaves > MaxLeaves {
				return fmt.Errorf("%w: more than %d terms", ErrTooExpensive, MaxLeaves)
			}
		default:
			return fmt.Errorf("catalog: search: unknown Expr %T", e)
		}
		for _, k := range kids {
			if err := walk(k, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(s.Where, 0)
}

// cursor is a position in the newest-first order: the last row of a page.
// It carries no authority (every page re-applies the search and its
// Parties), so it is validated for form, not signed.
type cursor struct {
	at int64
	id string
}

// CursorAfter is the cursor of a page that ends with r: the same search
// resumed from it starts right after r. A caller may end a page early with
// it (a response that would grow too large).
func CursorAfter(r Row) string {
	return cursor{at: r.ReceivedAt.UnixNano(), id: r.ID}.encode()
}

func (c cursor) encode() string {
	b := make([]byte, 9, 9+len(c.id))
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(c.at))
	return base64.RawURLEncoding.EncodeToString(append(b, c.id...))
}

func decodeCursor(s string) (cursor, error) {
	if len(s) > 2*(9+maxIDLen) {
		return cursor{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 10 || b[0] != cursorVersion {
		return cursor{}, ErrBadCursor
	}
	c := cursor{at: int64(binary.BigEndian.Uint64(b[1:9])), id: string(b[9:])}
	if !validID(c.id) {
		return cursor{}, ErrBadCursor
	}
	return c, nil
}
