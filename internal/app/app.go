// Package app opens everything mailvaultd runs from one *config.Config, once:
// the key provider, the index secret, the store and the Vault over it, and for
// the daemon the OpenPGP keyring, the users file, the audit log, the SMTP
// server and the HTTP handler built on them. It has one Reload (what SIGHUP
// re-reads) and one Close, and it offers what only some backends can do as
// small capabilities (legal holds) rather than as backend types.
//
// It owns wiring only: it never parses a command line, handles a signal or
// makes a delivery or retrieval decision of its own. Configuration problems
// come back as *config.Error, so that a command can tell them apart.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/retrieval"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/search"
	"github.com/mailvault/mailvaultd/usersfile"
)

// App is mailvaultd opened from a configuration.
type App struct {
	cfg   *config.Config
	log   *slog.Logger
	keys  sealer.KeyProvider
	local *reloadableKeyring // keys.provider local: what Reload swaps; nil under awskms
	store archive.Store
	vault *archive.Vault

	// The daemon's pieces, opened by OpenDaemon only.
	daemon  bool
	pgp     *pgpKeys // nil when openpgp.policy is off
	users   *usersfile.Users
	audit   retrieval.Audit // an *auditlog.Log, or unusableAudit if it could not be opened
	metrics *prometheus.Registry

	// The catalog (catalog.go): keys for every App, the rest the daemon's.
	catKeys     search.Keys
	cat         *catalogHandle
	indexer     *search.Indexer
	stopCatalog context.CancelFunc
	catDone     sync.WaitGroup
}

// Open opens what every command that reads or writes the archive needs: the
// key provider, the index secret, the store and the Vault. Close releases
// them.
func Open(ctx context.Context, c *config.Config, log *slog.Logger) (a *App, err error) {
	// The keyring file first: it is needed under every provider, and a
	// missing one is the likeliest problem, with a fix to name.
	secret, err := indexSecretSourceFor(c).IndexSecret(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			clear(secret)
		}
	}()
	a = &App{cfg: c, log: log}
	if a.keys, a.local, err = openKeys(ctx, c, log); err != nil {
		return nil, err
	}
	if a.store, err = openStore(ctx, c, log); err != nil {
		return nil, err
	}
	if a.catKeys, err = search.NewKeys(secret); err != nil {
		return nil, err
	}
	a.vault = archive.NewVault(a.store, secret) // the Vault owns secret now; Close clears it
	return a, nil
}

// Config is the configuration a was opened from.
func (a *App) Config() *config.Config { return a.cfg }

// Vault is the archive.
func (a *App) Vault() *archive.Vault { return a.vault }

// Keys is the key provider (local keyring or AWS KMS).
func (a *App) Keys() sealer.KeyProvider { return a.keys }

// MessageSize returns the plaintext size that archived message id's
// metadata announces: what a read of it is about to release, for an audit
// record written before the read. A message that does not exist (or an id
// that cannot name one) is archive.ErrNotFound.
func (a *App) MessageSize(ctx context.Context, id string) (int64, error) {
	if !archive.ValidID(id) {
		return 0, archive.ErrNotFound
	}
	info, err := a.vault.Head(ctx, id)
	if err != nil {
		return 0, err
	}
	md, err := sealer.ParseMetadata(info.Metadata)
	if err != nil {
		return 0, fmt.Errorf("app: message %s: %w", id, err)
	}
	return md.PlaintextSize, nil
}

// ReadMessage writes archived message id, exactly as received, to w and
// returns the bytes written. It records nothing: the caller audits the read.
func (a *App) ReadMessage(ctx context.Context, id string, w io.Writer) (int64, error) {
	if !archive.ValidID(id) {
		return 0, archive.ErrNotFound
	}
	return sealed.Copy(ctx, a.vault, a.keys, id, w)
}

// Close closes the audit log and clears the index key. Call it once nothing
// uses a any more (after the servers have stopped): the Vault cannot hash
// after it.
func (a *App) Close() error {
	err := a.closeCatalog()
	if l, ok := a.audit.(*auditlog.Log); ok {
		err = errors.Join(err, l.Close())
	}
	a.catKeys.Clear()
	a.vault.Close()
	if err != nil {
		return fmt.Errorf("app: close: %w", err)
	}
	return nil
}
