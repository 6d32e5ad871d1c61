package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/mailvault/mailvaultd/sealed"
)

// Indexer is a reader of every delivery's plaintext as it streams past (the
// catalog's term extractor): Deliver calls Begin once the message has an id,
// writes it every chunk it archives, and then calls exactly one of the
// MessageIndex's Commit (the message was newly archived and the next hop
// accepted it) and Abort (anything else: a failure, a duplicate).
//
// Nothing an Indexer does fails a delivery: an error from Write stops the
// feeding, a panic anywhere is recovered and logged, and the message stays
// archived. The only delay it may add is its own Write's back-pressure and
// Commit's run time, so both should be bounded.
type Indexer interface {
	Begin(env Envelope, id string) MessageIndex
}

// MessageIndex is one delivery's side of an Indexer.
type MessageIndex interface {
	io.Writer
	// Commit is given the plaintext manifest and the delivery's Result.
	Commit(ctx context.Context, m *sealed.Manifest, res Result)
	Abort()
}

// guardedIndex shields a delivery from its MessageIndex: after the first
// error or panic it stops calling it (an Abort is still attempted).
type guardedIndex struct {
	mi     MessageIndex
	logger *slog.Logger
	id     string
	failed bool
	done   bool
}

func beginIndex(ix Indexer, env Envelope, id string, logger *slog.Logger) (g *guardedIndex) {
	g = &guardedIndex{logger: logger, id: id}
	g.guard("begin", func() error {
		g.mi = ix.Begin(env, id)
		if g.mi == nil {
			g.done = true
		}
		return nil
	})
	return g
}

// guard runs f, turning a panic or an error into a logged failure.
func (g *guardedIndex) guard(op string, f func() error) {
	defer func() {
		if v := recover(); v != nil {
			g.failed = true
			g.logger.Error("panic in the indexer; the delivery stands", "id", g.id, "op", op,
				"panic", v, "stack", string(debug.Stack()))
		}
	}()
	if err := f(); err != nil {
		g.failed = true
		g.logger.Warn("indexer failed; the delivery stands", "id", g.id, "op", op, "err", err)
	}
}

func (g *guardedIndex) write(p []byte) {
	if g == nil || g.failed || g.done {
		return
	}
	g.guard("write", func() error {
		if _, err := g.mi.Write(p); err != nil {
			return fmt.Errorf("ingest: index write: %w", err)
		}
		return nil
	})
}

func (g *guardedIndex) commit(ctx context.Context, m *sealed.Manifest, res Result) {
	if g == nil || g.done {
		return
	}
	if g.failed {
		g.abort()
		return
	}
	g.done = true
	g.guard("commit", func() error { g.mi.Commit(ctx, m, res); return nil })
}

func (g *guardedIndex) abort() {
	if g == nil || g.done {
		return
	}
	g.done = true
	g.guard("abort", func() error { g.mi.Abort(); return nil })
}
