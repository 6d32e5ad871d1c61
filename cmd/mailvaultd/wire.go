package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/archive/s3store"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/sealer"
)

// parseArgs parses fs over args, allowing positional arguments before, between
// and after the flags ("get ID -o FILE").
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// commandFlags is the flag set of subcommand name with its -config flag.
func commandFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, fs.String("config", "", "configuration file (none: development defaults)")
}

// loadConfig reads path, or returns the development defaults for "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Development(), nil
	}
	return config.Load(path)
}

// configErr reports a configuration problem and returns the config exit code.
func configErr(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "mailvaultd: configuration error: %v\n", err)
	return exitConfig
}

// newLogger builds the daemon's logger from the log section.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// errNoKeyring is returned when the keyring file does not exist.
var errNoKeyring = errors.New("keyring does not exist")

// loadKeyring loads the local keyring named by the config.
func loadKeyring(c *config.Config) (*sealer.Keyring, error) {
	path := c.Keys.Local.Keyring
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		hint := "mailvaultd keys init"
		if c.File != "" {
			hint += " -config " + c.File
		}
		return nil, &config.Error{File: c.File, Key: "keys.local.keyring",
			Reason: fmt.Sprintf("%s: %v; create one with: %s", path, errNoKeyring, hint)}
	}
	kr, err := sealer.LoadKeyring(path)
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "keys.local.keyring", Reason: err.Error()}
	}
	return kr, nil
}

// reloadableKeys lets SIGHUP swap the local keyring under a running daemon.
type reloadableKeys struct {
	p atomic.Pointer[sealer.Keyring]
}

func (r *reloadableKeys) Name() string { return "local" }
func (r *reloadableKeys) GenerateDataKey(ctx context.Context, encCtx map[string]string) (*sealer.DataKey, error) {
	return r.p.Load().GenerateDataKey(ctx, encCtx)
}
func (r *reloadableKeys) Decrypt(ctx context.Context, keyID string, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	return r.p.Load().Decrypt(ctx, keyID, wrapped, encCtx)
}

// env is what every command that touches the archive needs.
type env struct {
	cfg     *config.Config
	keyring *sealer.Keyring
	local   *reloadableKeys // set when keys.provider is local
	keys    sealer.KeyProvider
	store   archive.Store
	vault   *archive.Vault
	s3      *s3store.Store // set when archive.backend is s3
}

// openEnv opens the keyring, key provider and store the config names.
func openEnv(ctx context.Context, c *config.Config, log *slog.Logger) (*env, error) {
	kr, err := loadKeyring(c)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: c, keyring: kr}
	switch c.Keys.Provider {
	case "local":
		e.local = &reloadableKeys{}
		e.local.p.Store(kr)
		e.keys = e.local
	case "awskms":
		if e.keys, err = openKMS(ctx, c, log); err != nil {
			return nil, err
		}
	}
	switch c.Archive.Backend {
	case "fs":
		if e.store, err = fsstore.New(c.Archive.FS.Dir); err != nil {
			return nil, &config.Error{File: c.File, Key: "archive.fs.dir", Reason: err.Error()}
		}
	case "s3":
		if e.s3, err = openS3(ctx, c, log); err != nil {
			return nil, err
		}
		e.store = e.s3
	}
	e.vault = archive.NewVault(e.store, kr.IndexKey())
	return e, nil
}

// oneOf reports whether s is one of opts, for argument checks.
func oneOf(s string, opts ...string) bool {
	for _, o := range opts {
		if s == o {
			return true
		}
	}
	return false
}
