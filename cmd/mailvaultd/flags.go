package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailvault/mailvaultd/internal/config"
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

// isConfigErr reports whether err is the configuration's fault.
func isConfigErr(err error) bool {
	var ce *config.Error
	return errors.As(err, &ce)
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

// oneOf reports whether s is one of opts, for argument checks.
func oneOf(s string, opts ...string) bool {
	for _, o := range opts {
		if s == o {
			return true
		}
	}
	return false
}
