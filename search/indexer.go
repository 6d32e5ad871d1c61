package search

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/sealed"
)

// DefaultRetryQueue is how many rows the Indexer keeps for a retry while
// the catalog refuses them.
const DefaultRetryQueue = 10000

// IndexerConfig configures NewIndexer.
type IndexerConfig struct {
	Catalog Catalog
	Keys    Keys
	Fields  blind.Fields
	Limits  blind.Limits // zero: blind.DefaultLimits()
	Logger  *slog.Logger
	// Metrics registers mailvaultd_catalog_index_failures_total and
	// mailvaultd_catalog_retry_queue; nil registers nothing.
	Metrics prometheus.Registerer
	// RetryQueue bounds the rows kept for a retry (0: DefaultRetryQueue).
	RetryQueue int
}

// Indexer feeds the catalog from the delivery core: an ingest.Indexer.
// Each delivery gets a blind.Extractor fed the bytes as they stream; on
// commit its row is Put at once. A Put that fails never loses mail (the
// delivery stands, the archive is complete): it is logged, counted and the
// row kept in a bounded queue that Run retries. A row dropped from a full
// queue, or lost with the process, is found by `catalog verify -repair`.
type Indexer struct {
	cat      Catalog
	keys     Keys
	fields   blind.Fields
	limits   blind.Limits
	log      *slog.Logger
	failures prometheus.Counter
	queued   prometheus.Gauge
	max      int

	mu      sync.Mutex
	queue   []catalog.Row
	dropped int
	wake    chan struct{}
}

var _ ingest.Indexer = (*Indexer)(nil)

// NewIndexer returns an Indexer; call Run for its retries.
func NewIndexer(cfg IndexerConfig) *Indexer {
	ix := &Indexer{cat: cfg.Catalog, keys: cfg.Keys, fields: cfg.Fields, limits: cfg.Limits, log: cfg.Logger,
		max: cfg.RetryQueue, wake: make(chan struct{}, 1),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailvaultd_catalog_index_failures_total",
			Help: "Catalog rows that could not be written when their message was delivered (kept for a retry)."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mailvaultd_catalog_retry_queue",
			Help: "Catalog rows waiting for a retry."}),
	}
	if ix.limits == (blind.Limits{}) {
		ix.limits = blind.DefaultLimits()
	}
	if ix.max <= 0 {
		ix.max = DefaultRetryQueue
	}
	if ix.log == nil {
		ix.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(ix.failures, ix.queued)
	}
	return ix
}

// Begin starts one delivery's extraction.
func (ix *Indexer) Begin(env ingest.Envelope, id string) ingest.MessageIndex {
	x := blind.NewExtractor(ix.keys.Token, ix.limits, ix.fields)
	x.Envelope(env.From, env.To)
	return &messageIndex{ix: ix, x: x}
}

// messageIndex is one delivery's extraction.
type messageIndex struct {
	ix *Indexer
	x  *blind.Extractor
}

func (mi *messageIndex) Write(p []byte) (int, error) { return mi.x.Write(p) }

func (mi *messageIndex) Abort() { mi.x.Abort() }

func (mi *messageIndex) Commit(ctx context.Context, m *sealed.Manifest, _ ingest.Result) {
	res, err := mi.x.Finish()
	if err != nil {
		mi.ix.failed(m.ID, err)
		return
	}
	row, err := rowOf(m, res, mi.ix.keys.Summary)
	if err != nil {
		mi.ix.failed(m.ID, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), putTimeout)
	defer cancel()
	if err := mi.ix.cat.Put(ctx, row); err != nil {
		mi.ix.failed(m.ID, err)
		mi.ix.enqueue(row)
	}
}

// failed logs and counts a row not written at delivery.
func (ix *Indexer) failed(id string, err error) {
	ix.failures.Inc()
	ix.log.Warn("catalog: message not indexed at delivery; it is archived, and the row is retried (or found by catalog verify -repair)",
		"id", id, "err", err)
}

func (ix *Indexer) enqueue(r catalog.Row) {
	ix.mu.Lock()
	if len(ix.queue) >= ix.max {
		ix.queue = ix.queue[1:] // the oldest goes; verify -repair finds it
		ix.dropped++
		ix.log.Error("catalog: retry queue full; a row is dropped until catalog verify -repair", "queue", ix.max)
	}
	ix.queue = append(ix.queue, r)
	ix.queued.Set(float64(len(ix.queue)))
	ix.mu.Unlock()
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many rows wait for a retry and how many were dropped
// from a full queue.
func (ix *Indexer) Pending() (queued, dropped int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.queue), ix.dropped
}

// Retry writes the queued rows in one batch; on failure they stay queued.
func (ix *Indexer) Retry(ctx context.Context) error {
	ix.mu.Lock()
	rows := ix.queue
	ix.queue = nil
	ix.mu.Unlock()
	if len(rows) == 0 {
		return nil
	}
	err := ix.cat.PutBatch(ctx, rows)
	if err != nil {
		ix.mu.Lock()
		// Rows queued meanwhile are newer: keep the total bounded, oldest out.
		all := append(rows, ix.queue...)
		if over := len(all) - ix.max; over > 0 {
			all = all[over:]
			ix.dropped += over
		}
		ix.queue = all
		ix.mu.Unlock()
	} else {
		ix.log.Info("catalog: queued rows written", "rows", len(rows))
	}
	ix.mu.Lock()
	ix.queued.Set(float64(len(ix.queue)))
	ix.mu.Unlock()
	return err
}

// Run retries the queue every interval (and soon after a row is queued)
// until ctx ends.
func (ix *Indexer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ix.wake:
			// A Put has just failed: give the catalog an interval first.
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := ix.Retry(rctx); err != nil && !errors.Is(err, context.Canceled) {
			ix.log.Warn("catalog: retry failed; rows stay queued", "err", err)
		}
		cancel()
	}
}
