package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

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

// keyringExists names the fix when the keyring file is missing.
func keyringExists(c *config.Config) error {
	path := c.Keys.Local.Keyring
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		hint := "mailvaultd keys init"
		if c.File != "" {
			hint += " -config " + c.File
		}
		return &config.Error{File: c.File, Key: "keys.local.keyring",
			Reason: fmt.Sprintf("%s: %v; create one with: %s", path, errNoKeyring, hint)}
	}
	return nil
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
