package search

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// Progress is how far a Rebuild or a repair is.
type Progress struct {
	Done, Total int           // messages handled (indexed, skipped or failed) and to handle
	Rate        float64       // messages a second so far
	ETA         time.Duration // at that rate; 0 when unknown
}

// RebuildOptions configures Rebuild and Verify's repair.
type RebuildOptions struct {
	Workers  int  // messages opened at once (0: 4)
	Force    bool // re-index messages that already have a row
	Batch    int  // rows per PutBatch (0: 100)
	Fields   blind.Fields
	Limits   blind.Limits     // zero: blind.DefaultLimits()
	Progress func(Progress)   // called after each batch and at the end; may be nil
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // for the rate; nil: time.Now
}

// RebuildStats is what a Rebuild did.
type RebuildStats struct {
	Archived int      // messages in the archive
	Indexed  int      // rows written
	Skipped  int      // already had a row (without Force)
	Failed   []string // ids that could not be indexed (logged)
}

// Rebuild indexes every archived message into cat: it opens each (one
// key-service call per message), streams its bytes through an extractor
// with the manifest's envelope and writes the rows in batches. Messages
// that already have a row are skipped unless opts.Force, so a Rebuild that
// stopped half way resumes where it was, and running it twice changes
// nothing. A message that fails is logged, listed in Failed and the rest
// go on; the error then says how many failed.
func Rebuild(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, cat Catalog, k Keys, opts RebuildOptions) (RebuildStats, error) {
	var st RebuildStats
	present := map[string]bool{}
	if !opts.Force {
		var err error
		if present, err = catalogIDs(ctx, cat); err != nil {
			return st, err
		}
	}
	ids, err := archiveIDs(ctx, v)
	if err != nil {
		return st, err
	}
	st.Archived = len(ids)
	var todo []string
	for _, id := range ids {
		if present[id] {
			st.Skipped++
		} else {
			todo = append(todo, id)
		}
	}
	indexed, failed, err := indexIDs(ctx, v, keys, cat, k, todo, st.Skipped, st.Archived, opts)
	st.Indexed, st.Failed = indexed, failed
	if err != nil {
		return st, err
	}
	if len(failed) > 0 {
		return st, fmt.Errorf("search: rebuild: %d of %d messages could not be indexed", len(failed), len(todo))
	}
	return st, nil
}

// VerifyReport is what Verify found (and, with repair, fixed).
type VerifyReport struct {
	Archived, Rows int
	Missing        []string // archived messages without a row
	Orphans        []string // rows without an archived message
	Repaired       bool
	Failed         []string // missing messages the repair could not index
}

// OK says the catalog and the archive agree.
func (r VerifyReport) OK() bool { return len(r.Missing) == 0 && len(r.Orphans) == 0 }

// Verify compares the catalog with the archive: every archived message
// must have a row and every row an archived message. With repair it indexes
// the missing messages and deletes the orphan rows (each checked against
// the archive once more first). The catalog's ids are read before the
// archive's, so a message delivered meanwhile may show as missing (repair
// re-indexes it, harmlessly) but never as an orphan.
func Verify(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, cat Catalog, k Keys, repair bool, opts RebuildOptions) (VerifyReport, error) {
	var rep VerifyReport
	rows, err := catalogIDs(ctx, cat)
	if err != nil {
		return rep, err
	}
	ids, err := archiveIDs(ctx, v)
	if err != nil {
		return rep, err
	}
	rep.Archived, rep.Rows = len(ids), len(rows)
	archived := make(map[string]bool, len(ids))
	for _, id := range ids {
		archived[id] = true
		if !rows[id] {
			rep.Missing = append(rep.Missing, id)
		}
	}
	for id := range rows {
		if !archived[id] {
			rep.Orphans = append(rep.Orphans, id)
		}
	}
	sort.Strings(rep.Missing)
	sort.Strings(rep.Orphans)
	if !repair || rep.OK() {
		return rep, nil
	}
	for _, id := range rep.Orphans {
		if _, err := v.Head(ctx, id); err == nil {
			continue // archived after all (a listing raced a delivery)
		} else if !errors.Is(err, archive.ErrNotFound) {
			return rep, fmt.Errorf("search: verify: head %s: %w", id, err)
		}
		if err := cat.Delete(ctx, id); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return rep, fmt.Errorf("search: verify: delete row %s: %w", id, err)
		}
	}
	_, failed, err := indexIDs(ctx, v, keys, cat, k, rep.Missing, 0, len(rep.Missing), opts)
	rep.Failed = failed
	if err != nil {
		return rep, err
	}
	rep.Repaired = len(failed) == 0
	if len(failed) > 0 {
		return rep, fmt.Errorf("search: verify: %d missing messages could not be indexed", len(failed))
	}
	return rep, nil
}

// archiveIDs lists every archived message's id.
func archiveIDs(ctx context.Context, v *archive.Vault) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		es, next, err := v.List(ctx, "", time.Time{}, time.Time{}, 1000, cursor)
		if err != nil {
			return nil, fmt.Errorf("search: list archive: %w", err)
		}
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		if next == "" {
			return ids, nil
		}
		cursor = next
	}
}

// catalogIDs lists every row's id.
func catalogIDs(ctx context.Context, cat Catalog) (map[string]bool, error) {
	ids := map[string]bool{}
	after := ""
	for {
		page, err := cat.IDs(ctx, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("search: list catalog: %w", err)
		}
		for _, id := range page {
			ids[id] = true
		}
		if len(page) < 1000 {
			return ids, nil
		}
		after = page[len(page)-1]
	}
}

// indexIDs indexes ids with opts.Workers workers and writes the rows in
// batches. done0 and total are for the progress report. It returns the
// rows written and the ids that failed; its error is a catalog write
// failure or the context's end, which stop it.
func indexIDs(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, cat Catalog, k Keys, ids []string, done0, total int, opts RebuildOptions) (indexed int, failed []string, err error) {
	workers, batch := opts.Workers, opts.Batch
	if workers <= 0 {
		workers = 4
	}
	if batch <= 0 {
		batch = 100
	}
	limits := opts.Limits
	if limits == (blind.Limits{}) {
		limits = blind.DefaultLimits()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type outcome struct {
		id  string
		row catalog.Row
		err error
	}
	work := make(chan string)
	out := make(chan outcome, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				row, err := indexOne(ctx, v, keys, k, id, opts.Fields, limits)
				select {
				case out <- outcome{id, row, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for _, id := range ids {
			select {
			case work <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()

	start := now()
	done := done0
	report := func() {
		if opts.Progress == nil {
			return
		}
		p := Progress{Done: done, Total: total}
		if el := now().Sub(start).Seconds(); el > 0 && done > done0 {
			p.Rate = float64(done-done0) / el
			p.ETA = time.Duration(float64(total-done) / p.Rate * float64(time.Second))
		}
		opts.Progress(p)
	}
	var pending []catalog.Row
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := cat.PutBatch(ctx, pending); err != nil {
			return fmt.Errorf("search: write %d rows: %w", len(pending), err)
		}
		indexed += len(pending)
		pending = pending[:0]
		report()
		return nil
	}
	for o := range out {
		done++
		if o.err != nil {
			log.Error("catalog: message not indexed", "id", o.id, "err", o.err)
			failed = append(failed, o.id)
			continue
		}
		pending = append(pending, o.row)
		if len(pending) >= batch {
			if err = flush(); err != nil {
				cancel()
				for range out {
				}
				return indexed, failed, err
			}
		}
	}
	if err = ctx.Err(); err != nil {
		return indexed, failed, fmt.Errorf("search: index: %w", err)
	}
	if err = flush(); err != nil {
		return indexed, failed, err
	}
	report()
	return indexed, failed, nil
}

// indexOne opens one archived message and makes its row.
func indexOne(ctx context.Context, v *archive.Vault, keys sealer.KeyProvider, k Keys, id string, f blind.Fields, l blind.Limits) (catalog.Row, error) {
	msg, err := sealed.Open(ctx, v, keys, id)
	if err != nil {
		return catalog.Row{}, err
	}
	defer msg.Close()
	m := msg.Manifest()
	x := blind.NewExtractor(k.Token, l, f)
	x.Envelope(m.From, m.To)
	rc, err := msg.NewReader(ctx, 0, -1)
	if err != nil {
		x.Abort()
		return catalog.Row{}, err
	}
	_, err = io.Copy(x, rc)
	rc.Close()
	if err != nil {
		x.Abort()
		return catalog.Row{}, fmt.Errorf("search: read %s: %w", id, err)
	}
	res, err := x.Finish()
	if err != nil {
		return catalog.Row{}, fmt.Errorf("search: extract %s: %w", id, err)
	}
	return rowOf(m, res, k.Summary)
}
