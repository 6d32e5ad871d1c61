package app

import (
	"net"
	"os"
	"path/filepath"

	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/milter"
)

// MilterServer returns the before-queue milter front end of milter.listen,
// or nil when it is off. It delivers into the same Vault and key provider as
// SMTPServer, under smtp's message limits, with no next hop: Postfix queues
// the message itself once the milter accepts it. The caller serves it on
// MilterListener().
func (a *App) MilterServer() *milter.Server {
	a.mustBeDaemon("MilterServer")
	c := a.cfg
	if c.Milter.Listen == "" {
		return nil
	}
	// The same indexer as the SMTP front end: mail that comes in through the
	// milter is searchable like the rest.
	core := &ingest.Core{Vault: a.vault, Keys: a.keys, Logger: a.log, Indexer: a.indexer}
	return milter.New(milter.Options{
		MaxMessageBytes: c.SMTP.MaxMessageBytes,
		MaxRecipients:   c.SMTP.MaxRecipients,
		DeliverTimeout:  c.SMTP.DataTimeout.D(),
		ReadTimeout:     c.SMTP.ReadTimeout.D(),
		WriteTimeout:    c.SMTP.WriteTimeout.D(),
		Logger:          a.log.With("frontend", "milter"),
		Metrics:         milter.NewMetrics(a.metrics),
	}, core)
}

// MilterListener opens milter.listen: a TCP address, or a unix socket whose
// stale file (left by a daemon that was killed) is replaced; the socket is
// made group-accessible so that Postfix, in the daemon's group, can connect.
func (a *App) MilterListener() (net.Listener, error) {
	network, addr := a.cfg.Milter.MilterNetwork()
	if network == "unix" {
		if err := os.MkdirAll(filepath.Dir(addr), 0o750); err != nil {
			return nil, err
		}
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := os.Chmod(addr, 0o660); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}
