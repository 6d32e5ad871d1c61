package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archivelist"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/retrieval"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/usersfile"
)

// web is the HTTP side: the retrieval handler with /metrics beside it.
type web struct {
	mux   *http.ServeMux
	users *usersfile.Users
	audit *auditlog.Log
}

func newWeb(ctx context.Context, c *config.Config, e *env, log *slog.Logger, reg *prometheus.Registry) (*web, error) {
	users, err := usersfile.Load(c.Retrieval.UsersFile)
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "retrieval.users_file", Reason: err.Error()}
	}
	if users.Missing() {
		log.Warn("users file does not exist: nobody can read the archive until users are added with `mailvaultd users add`",
			"path", c.Retrieval.UsersFile)
	}
	audit, err := auditlog.Open(c.Retrieval.AuditLog)
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "retrieval.audit_log", Reason: err.Error()}
	}
	w := &web{mux: http.NewServeMux(), users: users, audit: audit}
	w.mux.Handle("GET /metrics", metricsHandler(reg))
	w.mux.Handle("/", retrieval.NewHandler(retrieval.Options{
		Vault: e.vault, Keys: e.keys, Users: users, Audit: audit, Logger: log,
		Lister: archivelist.New(e.vault, retrieval.ManifestOpener(e.vault, e.keys), log),
		Ready:  func(ctx context.Context) error { return ready(ctx, e) },
	}))
	return w, nil
}

// ready says whether the store and the key service answer.
func ready(ctx context.Context, e *env) error {
	if p, ok := e.store.(archive.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	if p, ok := e.keys.(sealer.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("key service: %w", err)
		}
	}
	return nil
}

func (w *web) server(addr string) *http.Server {
	return retrieval.NewServer(addr, w.mux)
}

func (w *web) reload(log *slog.Logger) {
	if err := w.users.Reload(); err != nil {
		log.Error("reload: users file kept as it was", "err", err)
		return
	}
	log.Info("reload: users file reloaded", "users", w.users.Len())
}

// adminTokenFile is where the development defaults leave the auditor token.
var adminTokenFile = filepath.Join(config.DevDataDir, "admin.token")

// devBootstrap prepares ./mailvaultd-data for the development defaults: the
// directory, a keyring, and an auditor whose token is written to
// admin.token (mode 0600) and announced in the log.
func devBootstrap(c *config.Config, log *slog.Logger) error {
	if err := devKeyring(c, log); err != nil {
		return err
	}
	if _, err := os.Stat(adminTokenFile); err == nil {
		log.Info("development auditor token", "file", adminTokenFile)
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	users, err := usersfile.List(c.Retrieval.UsersFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, u := range users {
		if u.Name == "admin" {
			if err := usersfile.Remove(c.Retrieval.UsersFile, "admin"); err != nil {
				return err
			}
		}
	}
	token, err := usersfile.Add(c.Retrieval.UsersFile, "admin", access.RoleAuditor, nil)
	if err != nil {
		return err
	}
	if err := os.WriteFile(adminTokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("created development auditor 'admin'; its token is in the file", "file", adminTokenFile)
	return nil
}
