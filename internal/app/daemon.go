package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/pgpmime"
	"github.com/mailvault/mailvaultd/retrieval"
	"github.com/mailvault/mailvaultd/smtpd"
	"github.com/mailvault/mailvaultd/usersfile"
)

// OpenDaemon opens everything `serve` runs: what Open opens, checked against
// the store (an S3 bucket must answer), then the OpenPGP keyring (if the
// policy uses one), the users file, the audit log and the metrics registry.
// An error is a *config.Error when the configuration is at fault.
func OpenDaemon(ctx context.Context, c *config.Config, log *slog.Logger) (a *App, err error) {
	if a, err = Open(ctx, c, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.daemon = true
	if err := a.checkStore(ctx); err != nil {
		return nil, err
	}
	if a.pgp, err = openPGP(c, log); err != nil {
		return nil, err
	}
	if a.users, err = usersfile.Load(c.Retrieval.UsersFile); err != nil {
		return nil, &config.Error{File: c.File, Key: "retrieval.users_file", Reason: err.Error()}
	}
	if a.users.Missing() {
		log.Warn("users file does not exist: nobody can read the archive until users are added with `mailvaultd users add`",
			"path", c.Retrieval.UsersFile)
	}
	// An audit log that cannot be opened (a full disk, a damaged last line)
	// stops reads, never mail: the daemon starts, SMTP archives, and every
	// HTTP read answers 503 until the log is repaired and the daemon
	// restarted. Exiting instead would stop archiving over a problem that
	// only concerns reading.
	if log, err := auditlog.Open(c.Retrieval.AuditLog); err != nil {
		log := fmt.Errorf("app: retrieval.audit_log %s: %w", c.Retrieval.AuditLog, err)
		a.log.Error("audit log unusable: reads answer 503 until it is repaired and the daemon restarted; mail is still archived",
			"err", log)
		a.audit = unusableAudit{err: log}
	} else {
		a.audit = log
	}
	a.metrics = prometheus.NewRegistry()
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.startCatalog(ctx)
	return a, nil
}

// mustBeDaemon guards the methods only OpenDaemon's App has: calling them on
// Open's is a wiring mistake.
func (a *App) mustBeDaemon(what string) {
	if !a.daemon {
		panic("app: " + what + " needs an App from OpenDaemon")
	}
}

// SMTPServer returns the SMTP server Postfix hands mail to, delivering into
// the Vault. The caller serves it on a listener for smtp.listen.
func (a *App) SMTPServer() *smtpd.Server {
	a.mustBeDaemon("SMTPServer")
	c := a.cfg
	pipe := &smtpd.Pipeline{Vault: a.vault, Keys: a.keys, Logger: a.log, Metrics: smtpd.NewMetrics(a.metrics),
		Indexer: a.indexer}
	var pgp *smtpd.OpenPGP
	if a.pgp != nil {
		pgp = &smtpd.OpenPGP{Policy: a.pgp.policy, Keys: a.pgp.p.Load, KeepSubject: c.OpenPGP.KeepSubject}
	}
	return smtpd.New(smtpd.Options{
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
}

// httpIdleTimeout is how long an idle keep-alive connection may hold one of
// retrieval.max_connections (the retrieval package's own default, 120 s,
// let a few hundred idle clients hold their descriptors for minutes).
const httpIdleTimeout = 30 * time.Second

// metricsMaxConnections caps the connections of a separate metrics listener:
// a scraper needs one or two.
const metricsMaxConnections = 8

// HTTPServer returns the HTTP server of retrieval.listen: the retrieval API
// and web page, with /metrics beside them unless retrieval.metrics_listen
// serves it apart. The caller serves it on HTTPListener(ln).
func (a *App) HTTPServer() *http.Server {
	a.mustBeDaemon("HTTPServer")
	// /metrics is served by the retrieval handler itself (no outer mux,
	// whose path cleaning would answer "//" with a redirect instead of
	// retrieval's 400 and its audit line), unless it has a listener of its
	// own.
	var metrics http.Handler
	if a.cfg.Retrieval.MetricsListen == "" {
		metrics = a.metricsHandler()
	}
	// Options.Ready pings the catalog only: /readyz pings the store and the
	// key service itself, and pinging them again doubled every probe's calls.
	h := retrieval.NewHandler(retrieval.Options{
		Vault: a.vault, Keys: a.keys, Users: a.users, Audit: a.audit, Logger: a.log,
		Lister:         a.catalogLister(),
		Ready:          a.cat.Ping,
		ReadyName:      "catalog",
		Metrics:        metrics,
		TrustedProxies: a.cfg.Retrieval.TrustedProxyPrefixes(),
		Restorer:       a.Restorer(),
	})
	srv := retrieval.NewServer(a.cfg.Retrieval.Listen, h)
	srv.IdleTimeout = min(srv.IdleTimeout, httpIdleTimeout)
	return srv
}

// HTTPListener caps ln at retrieval.max_connections open connections. The
// cap is what keeps HTTP clients, idle ones included, from taking the file
// descriptors SMTP sessions need: connections beyond it wait in the
// kernel's accept queue, which costs the daemon no descriptor.
func (a *App) HTTPListener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, a.cfg.Retrieval.MaxConnections)
}

// MetricsServer returns the server of retrieval.metrics_listen, /metrics
// alone, or nil when /metrics is served on retrieval.listen. The caller
// serves it on MetricsListener(ln).
func (a *App) MetricsServer() *http.Server {
	a.mustBeDaemon("MetricsServer")
	if a.cfg.Retrieval.MetricsListen == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	return &http.Server{
		Addr:              a.cfg.Retrieval.MetricsListen,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    8 << 10,
	}
}

// MetricsListener caps ln, the listener of retrieval.metrics_listen.
func (a *App) MetricsListener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, metricsMaxConnections)
}

// metricsHandler is /metrics. It needs no token: it says how much mail
// passed and how the process fares, never whose; keep it on loopback.
func (a *App) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{})
}

// Reload re-reads what can change under a running daemon, as SIGHUP asks:
// the OpenPGP keyring, the local keyring (after `keys rotate`) and the users
// file. What fails to load is kept as it was, and the failure logged.
func (a *App) Reload() {
	a.mustBeDaemon("Reload")
	if a.pgp != nil {
		if err := a.pgp.load(a.cfg, a.log); err != nil {
			a.log.Error("reload: openpgp keyring kept as it was", "err", err)
		}
	}
	if a.local != nil {
		if kr, err := loadKeyring(a.cfg); err != nil {
			a.log.Error("reload: keyring kept as it was", "err", err)
		} else {
			a.local.p.Store(kr)
			a.log.Info("reload: keyring reloaded")
		}
	}
	if err := a.users.Reload(); err != nil {
		a.log.Error("reload: users file kept as it was", "err", err)
	} else {
		a.log.Info("reload: users file reloaded", "users", a.users.Len())
	}
}

// pgpKeys is the recipients' OpenPGP keyring, which Reload swaps.
type pgpKeys struct {
	policy pgpmime.Policy
	p      atomic.Pointer[pgpmime.Keyring]
}

// openPGP loads the recipient keyring when the policy asks for one (nil
// when it is off).
func openPGP(c *config.Config, log *slog.Logger) (*pgpKeys, error) {
	policy, err := pgpmime.ParsePolicy(c.OpenPGP.Policy)
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "openpgp.policy", Reason: err.Error()}
	}
	if policy == pgpmime.PolicyOff {
		return nil, nil
	}
	k := &pgpKeys{policy: policy}
	if err := k.load(c, log); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *pgpKeys) load(c *config.Config, log *slog.Logger) error {
	kr, err := pgpmime.LoadKeyring(c.OpenPGP.Keyring, c.OpenPGP.Fingerprints, time.Now(), log)
	if err != nil {
		return &config.Error{File: c.File, Key: "openpgp.keyring", Reason: err.Error()}
	}
	k.p.Store(kr)
	log.Info("openpgp keyring loaded", "keys", kr.Len(), "addresses", kr.Addresses())
	return nil
}

// unusableAudit stands in for an audit log that could not be opened: every
// record fails with why, so retrieval decrypts nothing and answers 503.
type unusableAudit struct{ err error }

var _ retrieval.Audit = unusableAudit{}

func (u unusableAudit) Record(access.Event) error { return u.err }
func (u unusableAudit) Err() error                { return u.err }
