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
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/internal/app"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/usersfile"
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
	a, err := app.OpenDaemon(context.Background(), c, log)
	if err != nil {
		if isConfigErr(err) {
			return configErr(stderr, err)
		}
		fmt.Fprintf(stderr, "mailvaultd: %v\n", err)
		return exitFail
	}
	// Close only what nothing runs on any more: after a clean shutdown, or
	// before anything started. After a drain that timed out, deliveries may
	// still hash with the index key; the process exit takes it instead.
	srv := a.SMTPServer()
	smtpLn, err := net.Listen("tcp", c.SMTP.Listen)
	if err != nil {
		a.Close()
		return configErr(stderr, &config.Error{File: c.File, Key: "smtp.listen", Reason: err.Error()})
	}
	var httpSrv *http.Server
	if c.Retrieval.Listen != "" {
		httpLn, err := net.Listen("tcp", c.Retrieval.Listen)
		if err != nil {
			smtpLn.Close()
			a.Close()
			return configErr(stderr, &config.Error{File: c.File, Key: "retrieval.listen", Reason: err.Error()})
		}
		httpSrv = a.HTTPServer()
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
				a.Reload()
				daemon.SdNotify(false, daemon.SdNotifyReady)
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "drain", c.SMTP.ShutdownTimeout.D().String())
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			sctx, cancel := context.WithTimeout(context.Background(), c.SMTP.ShutdownTimeout.D())
			drained := true
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("shutdown", "err", err)
				drained = false
			}
			if httpSrv != nil && httpSrv.Shutdown(sctx) != nil {
				drained = false
			}
			cancel()
			if drained {
				if err := a.Close(); err != nil {
					log.Warn("shutdown", "err", err)
				}
			}
			log.Info("stopped")
			return exitOK
		}
	}
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
