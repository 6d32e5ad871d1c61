package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/search"
)

// catalogRetryInterval is how often the daemon retries opening a catalog
// that could not be opened, and retries the Indexer's queued rows.
const catalogRetryInterval = 30 * time.Second

// catalogConfig is the catalog's part of c.
func catalogConfig(c *config.Config) catalog.Config {
	return catalog.Config{Backend: c.Catalog.Backend, Path: c.Catalog.SQLite.Path, DSN: c.Catalog.Postgres.DSN}
}

// OpenCatalog opens the configured catalog (for the catalog and search
// commands; the daemon keeps its own, see startCatalog). The caller closes
// it.
func (a *App) OpenCatalog(ctx context.Context) (*catalog.Catalog, error) {
	cat, err := catalog.Open(ctx, catalogConfig(a.cfg))
	if err != nil {
		return nil, &config.Error{File: a.cfg.File, Key: "catalog." + a.cfg.Catalog.Backend, Reason: err.Error()}
	}
	return cat, nil
}

// CatalogKeys returns the catalog's keys, derived from the index secret
// when the App was opened. Close clears them.
func (a *App) CatalogKeys() search.Keys { return a.catKeys }

// CatalogFields returns the term groups catalog.index names.
func (a *App) CatalogFields() search.RebuildOptions {
	return search.RebuildOptions{Fields: a.cfg.Catalog.IndexFields(), Logger: a.log}
}

// catalogHandle is the daemon's catalog: nil until it opens. A catalog that
// cannot be opened at start never stops mail: the daemon starts, deliveries
// queue their rows in the Indexer, listings fail with search.ErrUnavailable
// (503) and /readyz names the catalog, while a goroutine keeps trying.
type catalogHandle struct {
	mu  sync.RWMutex
	c   *catalog.Catalog
	err error // why it is not open
}

var _ search.Catalog = (*catalogHandle)(nil)

func (h *catalogHandle) get() (*catalog.Catalog, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.c == nil {
		return nil, fmt.Errorf("%w: %v", search.ErrUnavailable, h.err)
	}
	return h.c, nil
}

func (h *catalogHandle) Put(ctx context.Context, r catalog.Row) error {
	c, err := h.get()
	if err != nil {
		return err
	}
	return c.Put(ctx, r)
}

func (h *catalogHandle) PutBatch(ctx context.Context, rs []catalog.Row) error {
	c, err := h.get()
	if err != nil {
		return err
	}
	return c.PutBatch(ctx, rs)
}

func (h *catalogHandle) Get(ctx context.Context, id string) (catalog.Row, error) {
	c, err := h.get()
	if err != nil {
		return catalog.Row{}, err
	}
	return c.Get(ctx, id)
}

func (h *catalogHandle) Delete(ctx context.Context, id string) error {
	c, err := h.get()
	if err != nil {
		return err
	}
	return c.Delete(ctx, id)
}

func (h *catalogHandle) IDs(ctx context.Context, after string, limit int) ([]string, error) {
	c, err := h.get()
	if err != nil {
		return nil, err
	}
	return c.IDs(ctx, after, limit)
}

func (h *catalogHandle) Search(ctx context.Context, s catalog.Search) (catalog.Result, error) {
	c, err := h.get()
	if err != nil {
		return catalog.Result{}, err
	}
	return c.Search(ctx, s)
}

// Ping is /readyz's check; its error names the catalog.
func (h *catalogHandle) Ping(ctx context.Context) error {
	c, err := h.get()
	if err == nil {
		err = c.Ping(ctx)
	}
	if err != nil {
		return fmt.Errorf("catalog unavailable: %w", err)
	}
	return nil
}

func (h *catalogHandle) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c == nil {
		return nil
	}
	err := h.c.Close()
	h.c, h.err = nil, errors.New("closed")
	return err
}

// startCatalog opens the daemon's catalog (or keeps trying in the
// background), and makes its Indexer, whose retries it runs.
func (a *App) startCatalog(ctx context.Context) {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopCatalog = cancel
	a.cat = &catalogHandle{}
	a.indexer = search.NewIndexer(search.IndexerConfig{Catalog: a.cat, Keys: a.catKeys,
		Fields: a.cfg.Catalog.IndexFields(), Logger: a.log, Metrics: a.metrics})
	try := func() bool {
		octx, ocancel := context.WithTimeout(bg, catalogRetryInterval)
		defer ocancel()
		c, err := catalog.Open(octx, catalogConfig(a.cfg))
		a.cat.mu.Lock()
		defer a.cat.mu.Unlock()
		if err != nil {
			a.cat.err = err
			return false
		}
		if bg.Err() != nil { // closed meanwhile
			c.Close()
			return true
		}
		a.cat.c, a.cat.err = c, nil
		return true
	}
	a.catDone.Add(2)
	go func() {
		defer a.catDone.Done()
		a.indexer.Run(bg, catalogRetryInterval)
	}()
	if try() {
		a.catDone.Done()
		return
	}
	a.cat.mu.RLock()
	err := a.cat.err
	a.cat.mu.RUnlock()
	a.log.Error("catalog unavailable: mail is still archived (rows queue for a retry), listings answer 503; retrying",
		"backend", a.cfg.Catalog.Backend, "err", err, "retry", catalogRetryInterval)
	go func() {
		defer a.catDone.Done()
		t := time.NewTicker(catalogRetryInterval)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
			}
			if try() {
				a.log.Info("catalog opened", "backend", a.cfg.Catalog.Backend)
				return
			}
		}
	}()
}

// closeCatalog stops the catalog's goroutines and closes it.
func (a *App) closeCatalog() error {
	if a.stopCatalog == nil {
		return nil
	}
	a.stopCatalog()
	a.catDone.Wait()
	if q, _ := a.indexer.Pending(); q > 0 {
		a.log.Warn("catalog rows not written at shutdown; `mailvaultd catalog verify -repair` adds them", "rows", q)
	}
	return a.cat.close()
}

// catalogLister is the retrieval Lister of the daemon.
func (a *App) catalogLister() *search.Lister {
	return &search.Lister{Catalog: a.cat, Keys: a.catKeys, Logger: a.log}
}
