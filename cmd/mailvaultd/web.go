package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailvault/mailvaultd/internal/config"
)

// web is the HTTP side: /metrics beside the retrieval handler.
type web struct {
	mux *http.ServeMux
}

func newWeb(ctx context.Context, c *config.Config, e *env, log *slog.Logger, reg *prometheus.Registry) (*web, error) {
	w := &web{mux: http.NewServeMux()}
	w.mux.Handle("GET /metrics", metricsHandler(reg))
	return w, nil
}

func (w *web) server(addr string) *http.Server {
	return &http.Server{Addr: addr, Handler: w.mux, ReadHeaderTimeout: 10 * time.Second}
}

func (w *web) reload(log *slog.Logger) {}

// devBootstrap prepares ./mailvaultd-data for the development defaults: the
// directory, a keyring, and an auditor token.
func devBootstrap(c *config.Config, log *slog.Logger) error {
	return devKeyring(c, log)
}
