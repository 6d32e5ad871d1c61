// Package catalogtest is the conformance suite for the catalog's backends:
// the catalog package runs it on SQLite (a temporary file) and on a real
// PostgreSQL (internal/pgtest). It checks search results against a model —
// a plain Go evaluation of the Expr over the rows put — so every Expr kind,
// their combinations, negation, OR, paging and reader isolation are checked
// the same way on both backends.
//
// It also holds Generate, the synthetic corpus the benchmarks search.
//
// catalogtest is test support: no non-test code may import it. It never
// sees a plaintext term: tokens are arbitrary 64-bit numbers.
package catalogtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
)

// Run runs the suite. open must return a new, empty catalog each time it is
// called; it may register clean-up with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) *catalog.Catalog) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c *catalog.Catalog)
	}{
		{"PutGet", testPutGet},
		{"PutIdempotent", testPutIdempotent},
		{"PutBatchLastWins", testPutBatchLastWins},
		{"PutInvalid", testPutInvalid},
		{"Load", testLoad},
		{"LoadRandomExprs", testLoadRandomExprs},
		{"Delete", testDelete},
		{"SetFlags", testSetFlags},
		{"IDs", testIDs},
		{"ExprKinds", testExprKinds},
		{"RandomExprs", testRandomExprs},
		{"Paging", testPaging},
		{"EqualTimestamps", testEqualTimestamps},
		{"PagingWhileRowsArrive", testPagingWhileRowsArrive},
		{"ReaderIsolation", testReaderIsolation},
		{"CountCap", testCountCap},
		{"CursorTampering", testCursorTampering},
		{"WorkCap", testWorkCap},
		{"ConcurrentWriters", testConcurrentWriters},
		{"StatsAndPing", testStatsAndPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// t0 is the suite's epoch; rows are received at t0 + minutes.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// Tokens with the high bit set check that uint64 tokens survive the
// database's signed 64-bit integers.
const (
	tokA     blind.Token = 0xffff_0000_0000_0001
	tokB     blind.Token = 0x8000_0000_0000_0000
	tokC     blind.Token = 1
	tokD     blind.Token = 0x7fff_ffff_ffff_ffff
	tokE     blind.Token = 42
	partyAl  blind.Token = 0xaaaa_0000_0000_0001
	partyBo  blind.Token = 0xbbbb_0000_0000_0002
	partyCy  blind.Token = 0xcccc_0000_0000_0003
	tokUnset blind.Token = 0xdead_beef
)

func row(id string, minute int, size int64, flags catalog.Flags, tokens ...blind.Token) catalog.Row {
	return catalog.Row{
		ID:         id,
		ReceivedAt: t0.Add(time.Duration(minute) * time.Minute),
		Size:       size,
		Flags:      flags,
		Tokens:     tokens,
		Summary:    []byte("sealed:" + id),
	}
}

func put(t *testing.T, c *catalog.Catalog, rows ...catalog.Row) {
	t.Helper()
	if err := c.PutBatch(ctxFor(t), rows); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
}

func testPutGet(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	in := catalog.Row{ID: "m1", ReceivedAt: at, Size: 12345, Flags: catalog.FlagAttachment | catalog.FlagImported,
		Tokens: []blind.Token{tokA, tokC, tokA, tokB, tokD, tokC}, Summary: []byte{0, 1, 2, 0xff}}
	if err := c.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.ReceivedAt.Equal(at) || got.Size != in.Size || got.Flags != in.Flags || string(got.Summary) != string(in.Summary) || got.ID != "m1" {
		t.Errorf("Get = %+v, want %+v", got, in)
	}
	want := []blind.Token{tokA, tokB, tokC, tokD}
	slices.Sort(want)
	gotTokens := slices.Clone(got.Tokens)
	slices.Sort(gotTokens)
	if !slices.Equal(gotTokens, want) {
		t.Errorf("tokens = %x, want the distinct %x", gotTokens, want)
	}
	for _, tok := range want {
		res, err := c.Search(ctx, catalog.Search{Where: catalog.HasToken(tok)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 1 || res.Rows[0].ID != "m1" || res.Count != 1 || res.Rows[0].Tokens != nil {
			t.Errorf("search %x = %+v, want m1 without tokens", uint64(tok), res)
		}
		if r := res.Rows[0]; !r.ReceivedAt.Equal(at) || r.Size != in.Size || r.Flags != in.Flags || string(r.Summary) != string(in.Summary) {
			t.Errorf("search row = %+v, want %+v", r, in)
		}
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
}

func testPutIdempotent(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	put(t, c, row("m1", 1, 10, 0, tokA, tokB))
	put(t, c, row("m1", 1, 10, 0, tokA, tokB))
	put(t, c, row("m1", 5, 20, catalog.FlagHeld, tokB, tokC))
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokA)})
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokB)}, "m1")
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokC)}, "m1")
	expectIDs(t, c, catalog.Search{Where: catalog.Received{Before: t0.Add(2 * time.Minute)}})
	got, err := c.Get(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 20 || got.Flags != catalog.FlagHeld || !got.ReceivedAt.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("after replace: %+v", got)
	}
	if st, err := c.Stats(ctx); err != nil || st.Rows != 1 {
		t.Errorf("Stats = %+v, %v; want 1 row", st, err)
	}
}

func testPutBatchLastWins(t *testing.T, c *catalog.Catalog) {
	put(t, c, row("m1", 1, 10, 0, tokA), row("m2", 2, 10, 0, tokA), row("m1", 3, 10, 0, tokB))
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokA)}, "m2")
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokB)}, "m1")
	expectIDs(t, c, catalog.Search{}, "m1", "m2")
}

// load writes batches through a Loader and finishes it.
func load(t *testing.T, c *catalog.Catalog, batches ...[]catalog.Row) {
	t.Helper()
	ctx := ctxFor(t)
	l, err := c.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, b := range batches {
		if err := l.Put(ctx, b); err != nil {
			t.Fatalf("Loader.Put: %v", err)
		}
	}
	if err := l.Finish(ctx); err != nil {
		t.Fatalf("Loader.Finish: %v", err)
	}
}

func testLoad(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	put(t, c, row("m0", 0, 10, 0, tokA))
	load(t, c,
		// m1 replaced within the batch.
		[]catalog.Row{row("m1", 1, 10, 0, tokA), row("m2", 2, 10, 0, tokB), row("m1", 3, 10, 0, tokC)},
		// m2 replaced across batches, m0 (written before the load) replaced.
		[]catalog.Row{row("m2", 4, 10, 0, tokD), row("m0", 5, 10, 0, tokC, tokD)},
		nil,
	)
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokA)})
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokB)})
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokC)}, "m0", "m1")
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokD)}, "m0", "m2")
	expectIDs(t, c, catalog.Search{}, "m0", "m2", "m1")
	// A second load on top (the staging table is made again) and a plain
	// Put afterwards both work.
	load(t, c, []catalog.Row{row("m3", 6, 10, 0, tokA)})
	put(t, c, row("m1", 7, 10, 0, tokB))
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokA)}, "m3")
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokB)}, "m1")
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokC)}, "m0")
	if st, err := c.Stats(ctx); err != nil || st.Rows != 4 {
		t.Errorf("Stats = %+v, %v; want 4 rows", st, err)
	}
	l, err := c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, []catalog.Row{{ID: "", ReceivedAt: t0}}); !errors.Is(err, catalog.ErrInvalidRow) {
		t.Errorf("Loader.Put of an invalid row: %v, want ErrInvalidRow", err)
	}
	if err := l.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// testLoadRandomExprs checks searches over a corpus written by a Loader (in
// two batches, out of key order) against the model.
func testLoadRandomExprs(t *testing.T, c *catalog.Catalog) {
	rows := corpus()
	half := len(rows) / 2
	load(t, c, rows[half:], rows[:half])
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 60 {
		s := catalog.Search{Where: randomExpr(r, 3), Limit: 1 + r.IntN(25)}
		if r.IntN(2) == 1 {
			s.Parties = []blind.Token{partyAl, partyCy}
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkAgainstModel(t, c, rows, s) })
	}
}

func testPutInvalid(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	for name, r := range map[string]catalog.Row{
		"empty id":      {ReceivedAt: t0},
		"NUL in id":     {ID: "a\x00b", ReceivedAt: t0},
		"long id":       {ID: strings.Repeat("x", 256), ReceivedAt: t0},
		"invalid UTF-8": {ID: "a\xffb", ReceivedAt: t0},
		"zero time":     {ID: "m1"},
		"year 99999":    {ID: "m1", ReceivedAt: time.Date(99999, 1, 1, 0, 0, 0, 0, time.UTC)},
		"negative size": {ID: "m1", ReceivedAt: t0, Size: -1},
	} {
		if err := c.Put(ctx, r); !errors.Is(err, catalog.ErrInvalidRow) {
			t.Errorf("%s: Put = %v, want ErrInvalidRow", name, err)
		}
	}
	// A batch with one bad row records none.
	if err := c.PutBatch(ctx, []catalog.Row{row("ok", 1, 1, 0, tokA), {ID: "bad"}}); !errors.Is(err, catalog.ErrInvalidRow) {
		t.Errorf("PutBatch = %v, want ErrInvalidRow", err)
	}
	expectIDs(t, c, catalog.Search{})
}

func testDelete(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	put(t, c, row("m1", 1, 10, 0, tokA, tokB), row("m2", 2, 10, 0, tokA))
	if err := c.Delete(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokA)}, "m2")
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokB)})
	expectIDs(t, c, catalog.Search{}, "m2")
	if _, err := c.Get(ctx, "m1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := c.Delete(ctx, "m1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	// The id can be used again, with none of its old tokens.
	put(t, c, row("m1", 3, 10, 0, tokC))
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokB)})
	expectIDs(t, c, catalog.Search{Where: catalog.HasToken(tokC)}, "m1")
}

func testSetFlags(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	put(t, c, row("m1", 1, 10, catalog.FlagAttachment, tokA), row("m2", 2, 10, 0, tokA))
	if err := c.SetFlags(ctx, "m2", catalog.FlagHeld|catalog.FlagBrokenMIME, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFlags(ctx, "m1", catalog.FlagHeld, catalog.FlagAttachment); err != nil {
		t.Fatal(err)
	}
	expectIDs(t, c, catalog.Search{Where: catalog.HasFlags(catalog.FlagHeld)}, "m2", "m1")
	expectIDs(t, c, catalog.Search{Where: catalog.HasFlags(catalog.FlagAttachment)})
	expectIDs(t, c, catalog.Search{Where: catalog.HasFlags(catalog.FlagHeld | catalog.FlagBrokenMIME)}, "m2")
	if err := c.SetFlags(ctx, "m2", 0, catalog.FlagHeld); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Get(ctx, "m2"); err != nil || r.Flags != catalog.FlagBrokenMIME {
		t.Errorf("m2 flags = %v, %v; want FlagBrokenMIME", r.Flags, err)
	}
	if err := c.SetFlags(ctx, "nope", catalog.FlagHeld, 0); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("SetFlags missing: %v, want ErrNotFound", err)
	}
}

func testIDs(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	ids := []string{"b", "a", "B", "a0", "0", "zz", "y", "ä", "~"}
	var rows []catalog.Row
	for i, id := range ids {
		rows = append(rows, row(id, i, 1, 0))
	}
	put(t, c, rows...)
	want := slices.Clone(ids)
	slices.Sort(want) // byte order
	var got []string
	after := ""
	for {
		page, err := c.IDs(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Errorf("IDs = %q, want %q", got, want)
	}
	if page, err := c.IDs(ctx, "", 0); err != nil || len(page) != 0 {
		t.Errorf("IDs limit 0 = %q, %v", page, err)
	}
}

// corpus is a small fixed set of rows with every kind of feature.
func corpus() []catalog.Row {
	toks := []blind.Token{tokA, tokB, tokC, tokD, tokE}
	parties := []blind.Token{partyAl, partyBo, partyCy}
	r := rand.New(rand.NewPCG(1, 2))
	var rows []catalog.Row
	for i := range 60 {
		var ts []blind.Token
		for _, tok := range toks {
			if r.IntN(3) == 0 {
				ts = append(ts, tok)
			}
		}
		ts = append(ts, parties[r.IntN(3)])
		if r.IntN(4) == 0 {
			ts = append(ts, parties[r.IntN(3)])
		}
		minute := i
		if i%7 == 0 {
			minute = i - 1 // equal receive times
		}
		rows = append(rows, row(fmt.Sprintf("m%02d", (i*37)%60), minute, int64(100*r.IntN(20)), catalog.Flags(r.IntN(16)), ts...))
	}
	return rows
}

func testExprKinds(t *testing.T, c *catalog.Catalog) {
	rows := corpus()
	put(t, c, rows...)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for name, e := range map[string]catalog.Expr{
		"nil":                   nil,
		"AllOf empty":           catalog.AllOf{},
		"AnyOf empty":           catalog.AnyOf{},
		"token":                 catalog.HasToken(tokA),
		"high-bit token":        catalog.HasToken(tokB),
		"token nobody has":      catalog.HasToken(tokUnset),
		"two tokens":            catalog.AllOf{catalog.HasToken(tokA), catalog.HasToken(tokC)},
		"nested AllOf":          catalog.AllOf{catalog.AllOf{catalog.HasToken(tokA)}, catalog.AllOf{catalog.HasToken(tokD)}},
		"OR":                    catalog.AnyOf{catalog.HasToken(tokA), catalog.HasToken(tokB)},
		"OR with a filter":      catalog.AnyOf{catalog.HasToken(tokA), catalog.HasFlags(catalog.FlagHeld)},
		"NOT":                   catalog.Not{E: catalog.HasToken(tokA)},
		"NOT alone of OR":       catalog.Not{E: catalog.AnyOf{catalog.HasToken(tokA), catalog.HasToken(tokE)}},
		"token and not":         catalog.AllOf{catalog.HasToken(tokC), catalog.Not{E: catalog.HasToken(tokD)}},
		"double negation":       catalog.Not{E: catalog.Not{E: catalog.HasToken(tokE)}},
		"flags":                 catalog.HasFlags(catalog.FlagAttachment),
		"two flags":             catalog.HasFlags(catalog.FlagAttachment | catalog.FlagHeld),
		"no flags":              catalog.HasFlags(0),
		"after (inclusive)":     catalog.Received{After: at(30)},
		"before (exclusive)":    catalog.Received{Before: at(30)},
		"date range":            catalog.Received{After: at(10), Before: at(20)},
		"empty date range":      catalog.Received{After: at(20), Before: at(10)},
		"year 99999 after":      catalog.Received{After: time.Date(99999, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year 99999 before":     catalog.Received{Before: time.Date(99999, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year 1 before":         catalog.Received{Before: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"larger":                catalog.SizeRange{Min: 1000},
		"smaller":               catalog.SizeRange{Max: 1000},
		"size range":            catalog.SizeRange{Min: 500, Max: 1500},
		"token and date range":  catalog.AllOf{catalog.HasToken(tokA), catalog.Received{After: at(10), Before: at(40)}},
		"two date ranges":       catalog.AllOf{catalog.Received{After: at(10)}, catalog.Received{Before: at(40)}, catalog.HasToken(tokB)},
		"OR of tokens and more": catalog.AllOf{catalog.AnyOf{catalog.HasToken(tokA), catalog.HasToken(tokB)}, catalog.HasToken(tokC), catalog.SizeRange{Min: 300}},
		"OR of parties":         catalog.AnyOf{catalog.HasToken(partyAl), catalog.HasToken(partyBo)},
		"everything":            catalog.AllOf{catalog.HasToken(tokA), catalog.Not{E: catalog.HasToken(tokB)}, catalog.AnyOf{catalog.HasFlags(catalog.FlagHeld), catalog.SizeRange{Max: 800}}, catalog.Received{After: at(5)}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, limit := range []int{0, 4} {
				checkAgainstModel(t, c, rows, catalog.Search{Where: e, Limit: limit})
				checkAgainstModel(t, c, rows, catalog.Search{Where: e, Limit: limit, Parties: []blind.Token{partyAl}})
			}
		})
	}
}

func testRandomExprs(t *testing.T, c *catalog.Catalog) {
	rows := corpus()
	put(t, c, rows...)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 150 {
		e := randomExpr(r, 3)
		s := catalog.Search{Where: e, Limit: 1 + r.IntN(25)}
		switch r.IntN(3) {
		case 1:
			s.Parties = []blind.Token{partyBo}
		case 2:
			s.Parties = []blind.Token{partyAl, partyCy, tokUnset}
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkAgainstModel(t, c, rows, s) })
	}
}

func randomExpr(r *rand.Rand, depth int) catalog.Expr {
	toks := []blind.Token{tokA, tokB, tokC, tokD, tokE, partyAl, partyBo, tokUnset}
	if depth == 0 || r.IntN(3) == 0 {
		switch r.IntN(6) {
		case 0, 1, 2:
			return catalog.HasToken(toks[r.IntN(len(toks))])
		case 3:
			return catalog.HasFlags(catalog.Flags(1 << r.IntN(4)))
		case 4:
			a := t0.Add(time.Duration(r.IntN(70)-5) * time.Minute)
			return catalog.Received{After: a, Before: a.Add(time.Duration(r.IntN(40)) * time.Minute)}
		default:
			return catalog.SizeRange{Min: int64(100 * r.IntN(10)), Max: int64(100 * r.IntN(25))}
		}
	}
	n := r.IntN(4)
	kids := make([]catalog.Expr, n)
	for i := range kids {
		kids[i] = randomExpr(r, depth-1)
	}
	switch r.IntN(3) {
	case 0:
		return catalog.AllOf(kids)
	case 1:
		return catalog.AnyOf(kids)
	default:
		return catalog.Not{E: randomExpr(r, depth-1)}
	}
}

// matches is the model: what the catalog must answer, in plain Go.
func matches(row catalog.Row, e catalog.Expr) bool {
	switch e := e.(type) {
	case nil:
		return true
	case catalog.AllOf:
		for _, a := range e {
			if !matches(row, a) {
				return false
			}
		}
		return true
	case catalog.AnyOf:
		for _, a := range e {
			if matches(row, a) {
				return true
			}
		}
		return false
	case catalog.Not:
		return !matches(row, e.E)
	case catalog.HasToken:
		return slices.Contains(row.Tokens, blind.Token(e))
	case catalog.HasFlags:
		return row.Flags&catalog.Flags(e) == catalog.Flags(e)
	case catalog.Received:
		return (e.After.IsZero() || !row.ReceivedAt.Before(e.After)) && (e.Before.IsZero() || row.ReceivedAt.Before(e.Before))
	case catalog.SizeRange:
		return row.Size >= e.Min && (e.Max == 0 || row.Size < e.Max)
	}
	panic(fmt.Sprintf("model: %T", e))
}

func visible(row catalog.Row, parties []blind.Token) bool {
	if parties == nil {
		return true
	}
	for _, p := range parties {
		if slices.Contains(row.Tokens, p) {
			return true
		}
	}
	return false
}

// modelSearch is the ids Search must return, in order, over all pages.
func modelSearch(rows []catalog.Row, s catalog.Search) []string {
	var hits []catalog.Row
	for _, r := range rows {
		if matches(r, s.Where) && visible(r, s.Parties) {
			hits = append(hits, r)
		}
	}
	slices.SortFunc(hits, newestFirst)
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	return ids
}

func newestFirst(a, b catalog.Row) int {
	if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// searchAll pages through s to its end and returns the ids and each page's
// count.
func searchAll(t *testing.T, c *catalog.Catalog, s catalog.Search) (ids []string, counts []int) {
	t.Helper()
	for range 10000 {
		res, err := c.Search(ctxFor(t), s)
		if err != nil {
			t.Fatalf("Search(%+v): %v", s, err)
		}
		limit := cmp.Or(s.Limit, catalog.DefaultLimit)
		if len(res.Rows) > limit || (res.Next != "" && len(res.Rows) != limit) {
			t.Fatalf("page of %d rows (limit %d) with next %q", len(res.Rows), limit, res.Next)
		}
		for _, r := range res.Rows {
			ids = append(ids, r.ID)
		}
		counts = append(counts, res.Count)
		if res.Next == "" {
			return ids, counts
		}
		s.Cursor = res.Next
	}
	t.Fatal("paging does not end")
	return nil, nil
}

func checkAgainstModel(t *testing.T, c *catalog.Catalog, rows []catalog.Row, s catalog.Search) {
	t.Helper()
	want := modelSearch(rows, s)
	got, counts := searchAll(t, c, s)
	if !slices.Equal(got, want) {
		t.Errorf("Search(%s, parties %x) = %q, want %q", describe(s.Where), s.Parties, got, want)
	}
	for _, n := range counts {
		if n != len(want) {
			t.Errorf("Search(%s) count %d, want %d", describe(s.Where), n, len(want))
			break
		}
	}
}

func describe(e catalog.Expr) string {
	switch e := e.(type) {
	case catalog.AllOf:
		var parts []string
		for _, a := range e {
			parts = append(parts, describe(a))
		}
		return "AllOf(" + strings.Join(parts, ", ") + ")"
	case catalog.AnyOf:
		var parts []string
		for _, a := range e {
			parts = append(parts, describe(a))
		}
		return "AnyOf(" + strings.Join(parts, ", ") + ")"
	case catalog.Not:
		return "Not(" + describe(e.E) + ")"
	case catalog.HasToken:
		return fmt.Sprintf("Token(%x)", uint64(e))
	}
	return fmt.Sprintf("%+v", e)
}

func expectIDs(t *testing.T, c *catalog.Catalog, s catalog.Search, want ...string) {
	t.Helper()
	got, _ := searchAll(t, c, s)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("Search(%s) = %q, want %q", describe(s.Where), got, want)
	}
}

func testPaging(t *testing.T, c *catalog.Catalog) {
	rows := corpus()
	put(t, c, rows...)
	for _, limit := range []int{1, 2, 3, 7, 59, 60, 61} {
		for _, e := range []catalog.Expr{nil, catalog.HasToken(tokA), catalog.AnyOf{catalog.HasToken(tokA), catalog.HasToken(tokB)}} {
			checkAgainstModel(t, c, rows, catalog.Search{Where: e, Limit: limit})
		}
	}
}

func testEqualTimestamps(t *testing.T, c *catalog.Catalog) {
	var rows []catalog.Row
	for i := range 25 {
		minute := 0
		if i >= 20 {
			minute = -1 // older
		}
		rows = append(rows, row(fmt.Sprintf("id%03d", (i*7)%25), minute, 1, 0, tokA))
	}
	put(t, c, rows...)
	for _, limit := range []int{1, 3, 4, 20, 21} {
		checkAgainstModel(t, c, rows, catalog.Search{Where: catalog.HasToken(tokA), Limit: limit})
		checkAgainstModel(t, c, rows, catalog.Search{Limit: limit})
		checkAgainstModel(t, c, rows, catalog.Search{Limit: limit, Parties: []blind.Token{tokA}})
	}
}

// testPagingWhileRowsArrive: rows put between pages never make a page
// repeat or skip a row that existed when paging began; new mail is newer
// than the cursor and so is simply not in the later pages.
func testPagingWhileRowsArrive(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	var rows []catalog.Row
	for i := range 30 {
		rows = append(rows, row(fmt.Sprintf("old%02d", i), i/2, 1, 0, tokA, partyAl))
	}
	put(t, c, rows...)
	for si, s := range []catalog.Search{
		{Where: catalog.HasToken(tokA), Limit: 4},
		{Limit: 4},
		{Limit: 4, Parties: []blind.Token{partyAl, partyBo}},
	} {
		want := modelSearch(rows, s) // the rows as paging begins
		var got []string
		for page := 0; ; page++ {
			res, err := c.Search(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Rows {
				got = append(got, r.ID)
			}
			// New mail arrives: one newer than everything, and one at the
			// cursor's own time with an id sorting before the cursor's
			// (so it belongs to a page already seen).
			last := res.Rows[len(res.Rows)-1]
			at := row("!"+last.ID, 0, 1, 0, tokA, partyBo)
			at.ReceivedAt = last.ReceivedAt
			newer := row(fmt.Sprintf("new%d-%02d", si, page), 100*(si+2)+page, 1, 0, tokA, partyAl, partyBo)
			put(t, c, newer, at)
			for _, r := range []catalog.Row{newer, at} {
				rows = slices.DeleteFunc(rows, func(x catalog.Row) bool { return x.ID == r.ID })
				rows = append(rows, r)
			}
			if res.Next == "" {
				break
			}
			s.Cursor = res.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages while mail arrives = %q, want %q", got, want)
		}
	}
}

func testReaderIsolation(t *testing.T, c *catalog.Catalog) {
	rows := corpus()
	// A row of Bo's that carries every other token, and one of Cy's.
	rows = append(rows, row("bo-all", 70, 500, 15, tokA, tokB, tokC, tokD, tokE, partyBo),
		row("cy-all", 71, 500, 15, tokA, tokB, tokC, tokD, tokE, partyCy))
	put(t, c, rows...)
	r := rand.New(rand.NewPCG(5, 6))
	exprs := []catalog.Expr{nil, catalog.HasToken(partyBo), catalog.HasToken(partyCy),
		catalog.AnyOf{catalog.HasToken(partyBo), catalog.HasToken(partyCy), catalog.HasToken(tokA)},
		catalog.Not{E: catalog.HasToken(partyAl)}, catalog.HasFlags(15)}
	for range 60 {
		exprs = append(exprs, randomExpr(r, 3))
	}
	for _, e := range exprs {
		s := catalog.Search{Where: e, Limit: 5, Parties: []blind.Token{partyAl}}
		got, _ := searchAll(t, c, s)
		for _, id := range got {
			row := rows[slices.IndexFunc(rows, func(r catalog.Row) bool { return r.ID == id })]
			if !slices.Contains(row.Tokens, partyAl) {
				t.Fatalf("reader Al's search %s returned %s, which is not Al's", describe(e), id)
			}
		}
		checkAgainstModel(t, c, rows, s)
	}
	// Empty parties: nothing, whatever the expression; nil: everything.
	res, err := c.Search(ctxFor(t), catalog.Search{Parties: []blind.Token{}})
	if err != nil || len(res.Rows) != 0 || res.Count != 0 || res.Next != "" {
		t.Errorf("empty parties: %+v, %v; want nothing", res, err)
	}
	checkAgainstModel(t, c, rows, catalog.Search{Limit: 10})
}

func testCountCap(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	var rows []catalog.Row
	for i := range catalog.CountCap + 5 {
		toks := []blind.Token{tokA}
		if i%2 == 0 {
			toks = append(toks, tokB)
		}
		rows = append(rows, row(fmt.Sprintf("m%05d", i), i, 1, 0, toks...))
	}
	put(t, c, rows...)
	for _, tc := range []struct {
		s      catalog.Search
		count  int
		capped bool
	}{
		{catalog.Search{Where: catalog.HasToken(tokA), Limit: 10}, catalog.CountCap, true},
		{catalog.Search{Limit: 10}, catalog.CountCap, true},
		{catalog.Search{Where: catalog.HasToken(tokB), Limit: 10}, (catalog.CountCap + 5 + 1) / 2, false},
		{catalog.Search{Where: catalog.HasToken(tokB), Limit: catalog.MaxLimit + 100}, (catalog.CountCap + 5 + 1) / 2, false},
	} {
		res, err := c.Search(ctx, tc.s)
		if err != nil {
			t.Fatal(err)
		}
		if res.Count != tc.count || res.CountCapped != tc.capped {
			t.Errorf("Search(%s) count %d capped %v, want %d %v", describe(tc.s.Where), res.Count, res.CountCapped, tc.count, tc.capped)
		}
	}
	res, err := c.Search(ctx, catalog.Search{Limit: catalog.MaxLimit + 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != catalog.MaxLimit || res.Next == "" {
		t.Errorf("limit above MaxLimit: %d rows, next %q; want %d and more", len(res.Rows), res.Next, catalog.MaxLimit)
	}
}

func testCursorTampering(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	rows := corpus()
	put(t, c, rows...)
	res, err := c.Search(ctx, catalog.Search{Limit: 3})
	if err != nil || res.Next == "" {
		t.Fatalf("first page: %v", err)
	}
	good := res.Next
	for name, cur := range map[string]string{
		"not base64":    "!!!",
		"padded":        good + "=",
		"truncated":     good[:8],
		"empty id":      "AQAAAAAAAAAA",                                // version 1, time 0, no id
		"wrong version": "AgAAAAAAAAAAYQ",                              // version 2
		"NUL id":        "AQAAAAAAAAAAAA",                              // id "\x00"
		"huge":          strings.Repeat("A", 4096),                     // longer than any cursor
		"SQL":           "' OR 1=1 --",                                 // not even base64
		"flipped":       good[:len(good)-1] + flip(good[len(good)-1:]), // tail changed: still decodes or not; must not crash
	} {
		_, err := c.Search(ctx, catalog.Search{Limit: 3, Cursor: cur})
		if name == "flipped" {
			if err != nil && !errors.Is(err, catalog.ErrBadCursor) {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, catalog.ErrBadCursor) {
			t.Errorf("%s cursor: %v, want ErrBadCursor", name, err)
		}
	}
	// A cursor carries no authority: one taken from an auditor's page still
	// shows a reader only the reader's rows.
	s := catalog.Search{Limit: 100, Cursor: good, Parties: []blind.Token{partyCy}}
	res, err = c.Search(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		i := slices.IndexFunc(rows, func(x catalog.Row) bool { return x.ID == r.ID })
		if !slices.Contains(rows[i].Tokens, partyCy) {
			t.Errorf("reader's search with an auditor's cursor returned %s", r.ID)
		}
	}
}

func flip(s string) string {
	if s == "A" {
		return "B"
	}
	return "A"
}

func testWorkCap(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	put(t, c, corpus()...)
	wide := make(catalog.AnyOf, catalog.MaxLeaves+1)
	for i := range wide {
		wide[i] = catalog.HasToken(blind.Token(i))
	}
	var deep catalog.Expr = catalog.HasToken(tokA)
	for range catalog.MaxDepth + 1 {
		deep = catalog.Not{E: deep}
	}
	many := make([]blind.Token, catalog.MaxParties+1)
	for name, s := range map[string]catalog.Search{
		"too many leaves":  {Where: wide},
		"too deep":         {Where: deep},
		"too many parties": {Parties: many},
	} {
		if _, err := c.Search(ctx, s); !errors.Is(err, catalog.ErrTooExpensive) {
			t.Errorf("%s: %v, want ErrTooExpensive", name, err)
		}
	}
	// Just under the caps runs.
	okWide := wide[:catalog.MaxLeaves]
	if _, err := c.Search(ctx, catalog.Search{Where: okWide, Parties: many[:catalog.MaxParties]}); err != nil {
		t.Errorf("at the caps: %v", err)
	}
	if _, err := c.Search(ctx, catalog.Search{Where: catalog.AllOf{catalog.Not{}}}); err == nil || errors.Is(err, catalog.ErrTooExpensive) {
		t.Errorf("Not of nil: %v, want a plain error", err)
	}
}

func testConcurrentWriters(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				id := fmt.Sprintf("w%d-%02d", w, i)
				if err := c.Put(ctx, row(id, i, 1, 0, tokA, blind.Token(w))); err != nil {
					errs <- err
					return
				}
				if _, err := c.Search(ctx, catalog.Search{Where: catalog.HasToken(tokA), Limit: 5}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st, err := c.Stats(ctx); err != nil || st.Rows != 100 {
		t.Errorf("Stats = %+v, %v; want 100 rows", st, err)
	}
}

func testStatsAndPing(t *testing.T, c *catalog.Catalog) {
	ctx := ctxFor(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, c, corpus()...)
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 60 || st.Bytes <= 0 {
		t.Errorf("Stats = %+v, want 60 rows and some bytes", st)
	}
}
