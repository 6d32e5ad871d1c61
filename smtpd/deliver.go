package smtpd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealer"
)

// Pipeline is what the SMTP front end delivers through: the collaborators
// of the delivery core (ingest.Core, which does the delivery transaction)
// and the SMTP side's metrics.
type Pipeline struct {
	Vault      *archive.Vault
	Keys       sealer.KeyProvider
	MIMELimits partmap.Limits
	Logger     *slog.Logger
	Metrics    *Metrics         // may be nil
	Now        func() time.Time // nil: time.Now
	OnCommit   ingest.CommitHook
	Indexer    ingest.Indexer // the catalog's, or nil
}

func (p *Pipeline) core() *ingest.Core {
	return &ingest.Core{Vault: p.Vault, Keys: p.Keys, MIMELimits: p.MIMELimits, Logger: p.Logger,
		Now: p.Now, OnCommit: p.OnCommit, Indexer: p.Indexer}
}

// dataReader is DATA as the core reads it: go-smtp's limit errors become
// the core's, so that it tells a client over a limit (a permanent answer)
// from a lost connection.
type dataReader struct{ r io.Reader }

func (d dataReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case errors.Is(err, smtp.ErrDataTooLarge):
		err = fmt.Errorf("%w: %w", ingest.ErrTooBig, err)
	case errors.Is(err, smtp.ErrTooLongLine):
		// RFC 5321 4.5.3.1.6; Postfix folds lines at 998 bytes, so only a
		// client other than Postfix meets this.
		err = fmt.Errorf("%w: %w", ingest.ErrLineTooLong, err)
	}
	return n, err
}

// envelopeOf builds the core's envelope from MAIL FROM.
func envelopeOf(from string, opts *smtp.MailOptions) ingest.Envelope {
	env := ingest.Envelope{From: from}
	if opts != nil {
		env.Body8BitMIME = opts.Body == smtp.Body8BitMIME
		env.SMTPUTF8 = opts.UTF8
	}
	return env
}
