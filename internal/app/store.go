package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/archive/s3store"
	"github.com/mailvault/mailvaultd/internal/config"
)

// openStore opens the store archive.backend names.
func openStore(ctx context.Context, c *config.Config, log *slog.Logger) (archive.Store, error) {
	switch c.Archive.Backend {
	case "s3":
		s := c.Archive.S3
		st, err := s3store.New(ctx, s3store.Options{
			Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region, Endpoint: s.Endpoint, PathStyle: s.PathStyle,
			SSE: s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, SSECKeyFile: s.SSECKeyFile,
			ObjectLockMode: s.ObjectLock.Mode, ObjectLockDays: s.ObjectLock.Days, Logger: log,
		})
		if err != nil {
			return nil, &config.Error{File: c.File, Key: "archive.s3", Reason: err.Error()}
		}
		return st, nil
	default: // fs; Validate allows nothing else
		st, err := fsstore.New(c.Archive.FS.Dir)
		if err != nil {
			return nil, &config.Error{File: c.File, Key: "archive.fs.dir", Reason: err.Error()}
		}
		return st, nil
	}
}

// startChecker is a store that can check its configuration against what it
// stores into (the s3 store: the bucket answers, Object Lock is on if
// retention is configured).
type startChecker interface {
	Check(ctx context.Context) error
}

var _ startChecker = (*s3store.Store)(nil)

// checkStore fails at start, naming the problem, rather than at the first
// message.
func (a *App) checkStore(ctx context.Context) error {
	sc, ok := a.store.(startChecker)
	if !ok {
		return nil
	}
	if err := sc.Check(ctx); err != nil {
		return fmt.Errorf("archive.%s: %w", a.cfg.Archive.Backend, err)
	}
	return nil
}

// # Legal holds

// LegalHolds puts archived messages under a legal hold and lifts it.
type LegalHolds interface {
	// SetLegalHold holds message id (on) or lifts its hold. A message that
	// does not exist is archive.ErrNotFound.
	SetLegalHold(ctx context.Context, id string, on bool) error
}

// ErrNoLegalHolds is the reason a configuration cannot hold messages.
var ErrNoLegalHolds = errors.New("legal holds need archive.backend: s3 on a bucket with Object Lock")

// objectHolds is a store that can hold single objects (the s3 store).
type objectHolds interface {
	SetLegalHold(ctx context.Context, key string, on bool) error
}

var _ objectHolds = (*s3store.Store)(nil)

// LegalHoldsConfigured says, before anything is opened, whether c's store
// can hold messages: ErrNoLegalHolds if not.
func LegalHoldsConfigured(c *config.Config) error {
	if c.Archive.Backend != "s3" {
		return ErrNoLegalHolds
	}
	return nil
}

// LegalHolds returns the legal-hold capability of a's store, or
// ErrNoLegalHolds.
func (a *App) LegalHolds() (LegalHolds, error) {
	h, ok := a.store.(objectHolds)
	if !ok {
		return nil, ErrNoLegalHolds
	}
	return messageHolds{vault: a.vault, objects: h}, nil
}

// messageHolds holds every object of a message.
type messageHolds struct {
	vault   *archive.Vault
	objects objectHolds
}

// SetLegalHold returns the Vault's and the store's errors as they are: they
// name the store, the operation and the key already.
func (m messageHolds) SetLegalHold(ctx context.Context, id string, on bool) error {
	if !archive.ValidID(id) {
		return archive.ErrNotFound
	}
	if _, err := m.vault.Head(ctx, id); err != nil {
		return err
	}
	for _, key := range archive.MessageKeys(id) {
		if err := m.objects.SetLegalHold(ctx, key, on); err != nil {
			return err
		}
	}
	return nil
}
