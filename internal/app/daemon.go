package app

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailvault/mailvaultd/archivelist"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/pgpmime"
	"github.com/mailvault/mailvaultd/retrieval"
	"github.com/mailvault/mailvaultd/sealed"
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
	if a.audit, err = auditlog.Open(c.Retrieval.AuditLog); err != nil {
		return nil, &config.Error{File: c.File, Key: "retrieval.audit_log", Reason: err.Error()}
	}
	a.metrics = prometheus.NewRegistry()
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	pipe := &smtpd.Pipeline{Vault: a.vault, Keys: a.keys, Logger: a.log, Metrics: smtpd.NewMetrics(a.metrics)}
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

// HTTPServer returns the HTTP server of retrieval.listen: the retrieval API
// and web page, with /metrics beside them. The caller serves it on a
// listener.
func (a *App) HTTPServer() *http.Server {
	a.mustBeDaemon("HTTPServer")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	// No Options.Ready: /readyz pings the store and the key service itself,
	// and a Ready that pinged them again doubled every probe's calls.
	mux.Handle("/", retrieval.NewHandler(retrieval.Options{
		Vault: a.vault, Keys: a.keys, Users: a.users, Audit: a.audit, Logger: a.log,
		Lister: archivelist.New(a.vault, func(ctx context.Context, id string) (*sealed.Manifest, error) {
			return sealed.OpenManifest(ctx, a.vault, a.keys, id)
		}, a.log),
	}))
	return retrieval.NewServer(a.cfg.Retrieval.Listen, mux)
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
