package app

import (
	"github.com/mailvault/mailvaultd/restore"
	"github.com/mailvault/mailvaultd/retrieval"
)

// Restorer is what re-sends archived messages for retrieval's restore: a
// restore.Sender through forward.next_hop (Postfix's re-injection port, so
// the copy is not archived again), greeting as smtp.hostname. It is nil
// (an interface without a value, which retrieval answers 501) in a
// store-only configuration.
func (a *App) Restorer() retrieval.Restorer {
	c := a.cfg
	if c.Forward.NextHop == "" {
		return nil
	}
	return &restore.Sender{
		Vault: a.vault, Keys: a.keys, NextHop: c.Forward.NextHop,
		Timeout: c.Forward.Timeout.D(), HeloName: c.SMTP.Hostname,
	}
}
