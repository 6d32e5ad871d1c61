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
		log.Info("no -config: development defaults, everything under the current directory's "+config.DevDataDir,
			"data_dir", app.DevDataDirNote())
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
	smtpLn, err := listen("smtp.listen", c.SMTP.Listen)
	if err != nil {
		a.Close()
		return listenFailed(stderr, c, err)
	}
	// The HTTP servers, each on its listener, capped so that HTTP clients
	// cannot take the descriptors SMTP sessions need.
	var httpServers []*http.Server
	serveHTTP := func(hs *http.Server, ln net.Listener, what string) {
		httpServers = append(httpServers, hs)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(what+" server stopped", "err", err)
			}
		}()
	}
	// The milter (milter.listen), beside SMTP; nil when off.
	msrv := a.MilterServer()
	var milterLn net.Listener
	if msrv != nil {
		if milterLn, err = a.MilterListener(); err != nil {
			smtpLn.Close()
			a.Close()
			return listenFailed(stderr, c, &listenError{key: "milter.listen", addr: c.Milter.Listen, err: err})
		}
	}
	closeAll := func() {
		smtpLn.Close()
		if milterLn != nil {
			milterLn.Close()
		}
		for _, hs := range httpServers {
			hs.Close()
		}
		a.Close()
	}
	if c.Retrieval.Listen != "" {
		ln, err := listen("retrieval.listen", c.Retrieval.Listen)
		if err != nil {
			closeAll()
			return listenFailed(stderr, c, err)
		}
		serveHTTP(a.HTTPServer(), a.HTTPListener(ln), "http")
	}
	if ms := a.MetricsServer(); ms != nil {
		ln, err := listen("retrieval.metrics_listen", c.Retrieval.MetricsListen)
		if err != nil {
			closeAll()
			return listenFailed(stderr, c, err)
		}
		serveHTTP(ms, a.MetricsListener(ln), "metrics")
	}
	// Handle signals before announcing readiness: a SIGTERM right after
	// READY=1 must drain, not kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	smtpDone := make(chan error, 1)
	go func() { smtpDone <- srv.Serve(smtpLn) }()
	milterDone := make(chan error, 1)
	if msrv != nil {
		go func() { milterDone <- msrv.Serve(milterLn) }()
	}

	mode := "store-only"
	if c.Forward.NextHop != "" {
		mode = "forward to " + c.Forward.NextHop
	}
	log.Info("mailvaultd ready", "smtp", smtpLn.Addr().String(), "http", c.Retrieval.Listen,
		"metrics", cmpOr(c.Retrieval.MetricsListen, c.Retrieval.Listen),
		"milter", c.Milter.Listen, "mode", mode, "keys", c.Keys.Provider, "archive", c.Archive.Backend)
	daemon.SdNotify(false, daemon.SdNotifyReady)
	stopWatchdog := startWatchdog()
	defer stopWatchdog()

	for {
		select {
		case err := <-smtpDone:
			log.Error("smtp server stopped", "err", err)
			return exitFail
		case err := <-milterDone:
			log.Error("milter server stopped", "err", err)
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
			if msrv != nil {
				if err := msrv.Shutdown(sctx); err != nil {
					log.Warn("shutdown", "err", err)
					drained = false
				}
			}
			for _, hs := range httpServers {
				if hs.Shutdown(sctx) != nil {
					drained = false
				}
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

// cmpOr is a, or b if a is empty.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// listenError is a listener that could not be opened: the config key that
// names its address, the address and why.
type listenError struct {
	key, addr string
	err       error
}

func (e *listenError) Error() string {
	return fmt.Sprintf("%s: cannot listen on %s: %v", e.key, e.addr, e.err)
}

func (e *listenError) Unwrap() error { return e.err }

// listen opens the TCP listener of config key key.
func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &listenError{key: key, addr: addr, err: err}
	}
	return ln, nil
}

// listenFailed reports a listener that could not be opened and picks the
// exit code. Only what the file must change to fix is a configuration error
// (78, which systemd does not restart into). An address in use, or not (yet)
// on any interface, is the machine's state, not the file's: another process
// (perhaps another mailvaultd, or one still shutting down) may let go of it,
// so that exits 75 (EX_TEMPFAIL) and systemd restarts the daemon.
func listenFailed(stderr io.Writer, c *config.Config, err error) int {
	var le *listenError
	if !errors.As(err, &le) {
		fmt.Fprintf(stderr, "mailvaultd: %v\n", err)
		return exitFail
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		fmt.Fprintf(stderr, "mailvaultd: %s %s is in use: another process (perhaps another mailvaultd) holds it; stop it, or set %s to a free address%s\n",
			le.key, le.addr, le.key, inFile(c))
		return exitTempFail
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		fmt.Fprintf(stderr, "mailvaultd: %s %s: no interface of this host has that address (yet): %v\n", le.key, le.addr, le.err)
		return exitTempFail
	case errors.Is(err, syscall.EACCES):
		return configErr(stderr, &config.Error{File: c.File, Key: le.key,
			Reason: fmt.Sprintf("cannot listen on %s: %v (a port below 1024 needs a privilege the daemon does not have)", le.addr, le.err)})
	default:
		fmt.Fprintf(stderr, "mailvaultd: %v\n", err)
		return exitFail
	}
}

// inFile names the configuration file for a message, if there is one.
func inFile(c *config.Config) string {
	if c.File == "" {
		return " (with -config FILE)"
	}
	return " in " + c.File
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

// devKeyring creates ./mailvaultd-data and its keyring when missing, unless
// the archive there already holds messages (app.InitKeyring refuses: a new
// keyring would open none of them).
func devKeyring(c *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(config.DevDataDir, 0o700); err != nil {
		return err
	}
	path := c.Keys.Local.Keyring
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := app.InitKeyring(context.Background(), c); err != nil {
			return err
		}
		log.Info("created development keyring", "path", path)
	}
	return nil
}
