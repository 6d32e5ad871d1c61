package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/smtpd"
)

func cmdServe(args []string, stderr io.Writer) int {
	fs, cfgPath := commandFlags("serve", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return exitUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	log := newLogger(c.Log, stderr)
	if c.File == "" {
		if err := devBootstrap(c, log); err != nil {
			fmt.Fprintf(stderr, "mailvaultd: preparing development defaults: %v\n", err)
			return exitFail
		}
	}
	ctx := context.Background()
	e, err := openEnv(ctx, c, log)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return configErr(stderr, err)
		}
		fmt.Fprintf(stderr, "mailvaultd: %v\n", err)
		return exitFail
	}

	if e.s3 != nil {
		// Fail at start, naming the problem, rather than at the first
		// message: the bucket must answer (and have Object Lock if
		// retention is configured).
		if err := e.s3.Check(ctx); err != nil {
			fmt.Fprintf(stderr, "mailvaultd: archive.s3: %v\n", err)
			return exitFail
		}
	}
	pgp, pgpKeys, err := openPGP(c, log)
	if err != nil {
		return configErr(stderr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pipe := &smtpd.Pipeline{Vault: e.vault, Keys: e.keys, Logger: log, Metrics: smtpd.NewMetrics(reg)}
	srv := smtpd.New(smtpd.Options{
		Hostname:        c.SMTP.Hostname,
		MaxMessageBytes: c.SMTP.MaxMessageBytes,
		MaxRecipients:   c.SMTP.MaxRecipients,
		MaxSessions:     c.SMTP.MaxSessions,
		MaxLineLength:   c.SMTP.MaxLineLength,
		ReadTimeout:     c.SMTP.ReadTimeout.D(),
		WriteTimeout:    c.SMTP.WriteTimeout.D(),
		DataTimeout:     c.SMTP.DataTimeout.D(),
		NextHop:         c.Forward.NextHop,
		NextHopTimeout:  c.Forward.Timeout.D(),
		OpenPGP:         pgp,
		Allow:           c.SMTP.AllowNets(),
	}, pipe)

	smtpLn, err := net.Listen("tcp", c.SMTP.Listen)
	if err != nil {
		return configErr(stderr, &config.Error{File: c.File, Key: "smtp.listen", Reason: err.Error()})
	}
	web, err := newWeb(ctx, c, e, log, reg)
	if err != nil {
		return configErr(stderr, err)
	}
	var httpSrv *http.Server
	if c.Retrieval.Listen != "" {
		httpLn, err := net.Listen("tcp", c.Retrieval.Listen)
		if err != nil {
			return configErr(stderr, &config.Error{File: c.File, Key: "retrieval.listen", Reason: err.Error()})
		}
		httpSrv = web.server(c.Retrieval.Listen)
		go func() {
			if err := httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "err", err)
			}
		}()
	}
	// Handle signals before announcing readiness: a SIGTERM right after
	// READY=1 must drain, not kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	smtpDone := make(chan error, 1)
	go func() { smtpDone <- srv.Serve(smtpLn) }()

	mode := "store-only"
	if c.Forward.NextHop != "" {
		mode = "forward to " + c.Forward.NextHop
	}
	log.Info("mailvaultd ready", "smtp", smtpLn.Addr().String(), "http", c.Retrieval.Listen,
		"mode", mode, "keys", c.Keys.Provider, "archive", c.Archive.Backend)
	daemon.SdNotify(false, daemon.SdNotifyReady)
	stopWatchdog := startWatchdog()
	defer stopWatchdog()

	for {
		select {
		case err := <-smtpDone:
			log.Error("smtp server stopped", "err", err)
			return exitFail
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				daemon.SdNotify(false, daemon.SdNotifyReloading)
				reload(c, e, web, pgpKeys, log)
				daemon.SdNotify(false, daemon.SdNotifyReady)
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "drain", c.SMTP.ShutdownTimeout.D().String())
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			sctx, cancel := context.WithTimeout(context.Background(), c.SMTP.ShutdownTimeout.D())
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
			if httpSrv != nil {
				httpSrv.Shutdown(sctx)
			}
			cancel()
			log.Info("stopped")
			return exitOK
		}
	}
}

// reload re-reads what SIGHUP covers: the local keyring, the OpenPGP
// keyring and the users file. What fails to load is kept as it was.
func reload(c *config.Config, e *env, web *web, pgpKeys *pgpKeys, log *slog.Logger) {
	if pgpKeys != nil {
		if err := pgpKeys.load(c, log); err != nil {
			log.Error("reload: openpgp keyring kept as it was", "err", err)
		}
	}
	if e.local != nil {
		kr, err := loadKeyring(c)
		if err != nil {
			log.Error("reload: keyring kept as it was", "err", err)
		} else {
			e.local.p.Store(kr)
			log.Info("reload: keyring reloaded")
		}
	}
	web.reload(log)
}

// startWatchdog pings systemd's watchdog at half its interval while the
// daemon runs.
func startWatchdog() func() {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return func() {}
	}
	t := time.NewTicker(interval / 2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// metricsHandler serves the registry at /metrics.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
