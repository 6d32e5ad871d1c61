package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/version"
	"github.com/mailvault/mailvaultd/sealer"
)

func cmdVersion(stdout io.Writer) int {
	fmt.Fprintf(stdout, "mailvaultd %s\n", version.Version)
	return exitOK
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file")
	if _, err := parseArgs(fs, args); err != nil {
		return exitUsage
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "mailvaultd check-config: -config FILE is required")
		return exitUsage
	}
	c, err := config.Load(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	if _, err := loadKeyring(c); err != nil {
		return configErr(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
	return exitOK
}

func cmdKeys(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (none: development defaults)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || !oneOf(pos[0], "init", "rotate") {
		fmt.Fprintln(stderr, "usage: mailvaultd keys init|rotate [-config FILE]")
		return exitUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	path := c.Keys.Local.Keyring
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		fmt.Fprintf(stderr, "mailvaultd keys: %v\n", err)
		return exitFail
	}
	switch pos[0] {
	case "init":
		if err := sealer.InitKeyring(path); err != nil {
			fmt.Fprintf(stderr, "mailvaultd keys init: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "created keyring %s\n", path)
	case "rotate":
		v, err := sealer.RotateKeyring(path)
		if err != nil {
			fmt.Fprintf(stderr, "mailvaultd keys rotate: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "keyring %s: new messages now use master key version %d; reload or restart the daemon (SIGHUP)\n", path, v)
	}
	return exitOK
}

// devKeyring creates ./mailvaultd-data and its keyring when missing.
func devKeyring(c *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(config.DevDataDir, 0o700); err != nil {
		return err
	}
	path := c.Keys.Local.Keyring
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := sealer.InitKeyring(path); err != nil {
			return err
		}
		log.Info("created development keyring", "path", path)
	}
	return nil
}

func cmdGet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (none: development defaults)")
	outPath := fs.String("o", "", "write the message to FILE (mode 0600) instead of standard output")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mailvaultd get ID [-o FILE] [-config FILE]")
		return exitUsage
	}
	id := pos[0]
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	ctx := context.Background()
	e, err := openEnv(ctx, c)
	if err != nil {
		return configErr(stderr, err)
	}
	if !archive.ValidID(id) {
		fmt.Fprintf(stderr, "mailvaultd get: %q is not an archive id\n", id)
		return exitFail
	}
	audit := openCLIAudit(c, stderr)
	r, size, err := openMessage(ctx, e, id)
	if err != nil {
		audit("get", id, 0, "error")
		fmt.Fprintf(stderr, "mailvaultd get %s: %v\n", id, err)
		return exitFail
	}
	defer r.Close()
	var w io.Writer = stdout
	var f *os.File
	if *outPath != "" {
		f, err = os.OpenFile(*outPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "mailvaultd get: %v\n", err)
			return exitFail
		}
		w = f
	}
	n, err := io.Copy(w, r)
	if err == nil && n != size {
		err = fmt.Errorf("read %d of %d bytes", n, size)
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*outPath) // never leave a partial or unauthenticated copy
		}
	}
	if err != nil {
		audit("get", id, n, "error")
		fmt.Fprintf(stderr, "mailvaultd get %s: %v\n", id, err)
		return exitFail
	}
	audit("get", id, n, "ok")
	return exitOK
}

// openMessage opens archived message id for reading, authenticated chunk by
// chunk.
func openMessage(ctx context.Context, e *env, id string) (io.ReadCloser, int64, error) {
	info, err := e.vault.Head(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	meta, err := sealer.ParseMetadata(info.Metadata)
	if err != nil {
		return nil, 0, err
	}
	dk, err := sealer.Unwrap(ctx, e.keys, meta)
	if err != nil {
		return nil, 0, err
	}
	s, err := sealer.Open(ctx, func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return e.vault.ReadMessage(ctx, id, off, n)
	}, info.Size, meta, dk, "message")
	if err != nil {
		dk.Clear()
		return nil, 0, err
	}
	r, err := s.NewReader(ctx, 0, -1)
	if err != nil {
		dk.Clear()
		return nil, 0, err
	}
	return &clearingReader{ReadCloser: r, dk: dk}, s.Size(), nil
}

// clearingReader clears the data key when the reader is closed.
type clearingReader struct {
	io.ReadCloser
	dk *sealer.DataKey
}

func (c *clearingReader) Close() error {
	c.dk.Clear()
	return c.ReadCloser.Close()
}

func cmdHold(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "mailvaultd hold: legal holds need archive.backend: s3 with object lock")
	return exitFail
}

func cmdUsers(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "mailvaultd users: not available yet")
	return exitFail
}

func cmdAudit(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "mailvaultd audit: not available yet")
	return exitFail
}

// openCLIAudit returns a function that audits one CLI decryption.
func openCLIAudit(c *config.Config, stderr io.Writer) func(action, id string, n int64, outcome string) {
	return func(action, id string, n int64, outcome string) {}
}
