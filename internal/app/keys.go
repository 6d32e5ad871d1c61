package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/sealer/awskms"
)

// errNoKeyring is the reason given when the keyring file does not exist.
var errNoKeyring = errors.New("keyring does not exist")

// openKeys opens the key provider keys.provider names; under local it also
// returns the reloadable keyring Reload swaps.
func openKeys(ctx context.Context, c *config.Config, log *slog.Logger) (sealer.KeyProvider, *reloadableKeyring, error) {
	switch c.Keys.Provider {
	case "awskms":
		k := c.Keys.AWSKMS
		p, err := awskms.New(ctx, awskms.Options{KeyID: k.KeyID, Region: k.Region, Endpoint: k.Endpoint, Logger: log})
		if err != nil {
			return nil, nil, &config.Error{File: c.File, Key: "keys.awskms", Reason: err.Error()}
		}
		return p, nil, nil
	default: // local; Validate allows nothing else
		kr, err := loadKeyring(c)
		if err != nil {
			return nil, nil, err
		}
		r := &reloadableKeyring{}
		r.p.Store(kr)
		return r, r, nil
	}
}

// CheckKeys checks, without touching the network, the keys the configuration
// needs from disk: the keyring file, which holds the index secret under any
// provider and the master keys under local.
func CheckKeys(c *config.Config) error {
	if c.Keys.Provider == "local" {
		_, err := loadKeyring(c)
		return err
	}
	secret, err := indexSecretSourceFor(c).IndexSecret(context.Background())
	clear(secret)
	return err
}

// loadKeyring loads the local keyring named by the configuration.
func loadKeyring(c *config.Config) (*sealer.Keyring, error) {
	if err := keyringExists(c); err != nil {
		return nil, err
	}
	kr, err := sealer.LoadKeyring(c.Keys.Local.Keyring)
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "keys.local.keyring", Reason: err.Error()}
	}
	return kr, nil
}

// keyringExists names the fix when the keyring file is missing: where it
// was looked for, and that `keys init` is for a new archive only.
func keyringExists(c *config.Config) error {
	path := c.Keys.Local.Keyring
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		hint := "mailvaultd keys init"
		if c.File != "" {
			hint += " -config " + c.File
		}
		return &config.Error{File: c.File, Key: "keys.local.keyring",
			Reason: fmt.Sprintf("%s: %v%s; for a new archive, create one with: %s (if messages are archived already, restore the keyring they were sealed under instead)",
				absPath(path), errNoKeyring, devWhere(c), hint)}
	}
	return nil
}

// devWhere says, for the development defaults, where the data directory was
// looked for and how to look elsewhere; "" for a configuration file.
func devWhere(c *config.Config) string {
	if c.File != "" {
		return ""
	}
	return fmt.Sprintf(" (no -config: the development defaults keep everything in %s, under the current directory; run from the directory that holds your %s, or pass -config FILE)",
		absPath(config.DevDataDir), config.DevDataDir)
}

// DevDataDirNote says where the development defaults keep their data, for
// the log line that announces them.
func DevDataDirNote() string { return absPath(config.DevDataDir) }

// absPath is path made absolute for a message, or path if that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// ErrArchiveHasMessages is why a keyring is not created: the archive already
// holds messages, which only the keyring they were sealed under can open
// (and whose index entries only its index key finds).
var ErrArchiveHasMessages = errors.New("the archive already holds messages")

// InitKeyring creates the local keyring keys.local.keyring names. It never
// overwrites one, and it refuses when the configured archive already holds
// messages: a keyring created then opens none of them, and the daemon would
// go on archiving under it as if nothing had happened. The usual cause is a
// keyring looked for in the wrong place (the development defaults run from
// another directory, or the wrong -config), or one lost; the error says where
// everything was looked for.
func InitKeyring(ctx context.Context, c *config.Config) error {
	path := c.Keys.Local.Keyring
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("app: keyring %s exists; it is never overwritten", absPath(path))
	}
	has, err := archiveHasMessages(ctx, c)
	if err != nil {
		return fmt.Errorf("app: before creating keyring %s, checking that archive %s holds no messages: %w",
			absPath(path), archiveWhere(c), err)
	}
	if has {
		return fmt.Errorf("app: refusing to create keyring %s: %w: archive %s%s. A new keyring could open none of them. Restore the keyring they were sealed under to %s, or point -config at the configuration that names it",
			absPath(path), ErrArchiveHasMessages, archiveWhere(c), devWhere(c), absPath(path))
	}
	if err := sealer.InitKeyring(path); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	return nil
}

// archiveWhere names the configured archive for a message.
func archiveWhere(c *config.Config) string {
	if c.Archive.Backend == "s3" {
		s := c.Archive.S3
		where := "s3://" + s.Bucket + "/" + s.Prefix
		if s.Endpoint != "" {
			where += " at " + s.Endpoint
		}
		return where + " (archive.s3)"
	}
	return absPath(c.Archive.FS.Dir) + " (archive.fs.dir)"
}

// archiveHasMessages reports whether the configured archive holds at least
// one message object: one List of msg/ with limit 1. An fs archive whose
// directory does not exist holds none (and is not created here).
func archiveHasMessages(ctx context.Context, c *config.Config) (bool, error) {
	if c.Archive.Backend != "s3" {
		if _, err := os.Stat(c.Archive.FS.Dir); errors.Is(err, os.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	st, err := openStore(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		return false, err
	}
	objs, err := st.List(ctx, archive.MessagePrefix, "", 1)
	if err != nil {
		return false, err
	}
	return len(objs) > 0, nil
}

// reloadableKeyring is the local key provider whose keyring Reload swaps
// under a running daemon.
type reloadableKeyring struct {
	p atomic.Pointer[sealer.Keyring]
}

var _ sealer.KeyProvider = (*reloadableKeyring)(nil)

func (r *reloadableKeyring) Name() string { return "local" }

func (r *reloadableKeyring) GenerateDataKey(ctx context.Context, encCtx map[string]string) (*sealer.DataKey, error) {
	return r.p.Load().GenerateDataKey(ctx, encCtx)
}

func (r *reloadableKeyring) Decrypt(ctx context.Context, keyID string, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	return r.p.Load().Decrypt(ctx, keyID, wrapped, encCtx)
}

// # The index secret

// indexSecretSource yields the index secret: the 32 bytes that key every
// hash standing in for an address or a message in the archive's object names.
// IndexSecret returns a slice the caller owns and clears (the Vault does, on
// Close).
//
// It is a seam of its own, apart from the key provider, because the two need
// not live together: today the secret is in the local keyring file under
// either provider; a fleet sharing one bucket will read it from a descriptor
// object in the bucket, wrapped by the KMS key, and only indexSecretSourceFor
// changes.
type indexSecretSource interface {
	IndexSecret(ctx context.Context) ([]byte, error)
}

// indexSecretSourceFor is where the configuration picks the source.
func indexSecretSourceFor(c *config.Config) indexSecretSource { return keyringIndexSecret{c: c} }

// keyringIndexSecret reads the index secret alone from keys.local.keyring,
// without opening the keyring as a key provider.
type keyringIndexSecret struct{ c *config.Config }

var _ indexSecretSource = keyringIndexSecret{}

func (k keyringIndexSecret) IndexSecret(context.Context) ([]byte, error) {
	if err := keyringExists(k.c); err != nil {
		return nil, err
	}
	secret, err := sealer.LoadIndexKey(k.c.Keys.Local.Keyring)
	if err != nil {
		return nil, &config.Error{File: k.c.File, Key: "keys.local.keyring", Reason: err.Error()}
	}
	return secret, nil
}
