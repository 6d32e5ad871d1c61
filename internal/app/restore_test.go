package app

import (
	"testing"

	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/restore"
)

// TestRestorer: a next hop gives a restore.Sender aimed at it; store-only
// gives a nil interface (retrieval's 501), not a nil pointer in one.
func TestRestorer(t *testing.T) {
	c := &config.Config{}
	c.Forward.NextHop = "127.0.0.1:10026"
	c.SMTP.Hostname = "vault.test"
	a := &App{cfg: c}
	s, ok := a.Restorer().(*restore.Sender)
	if !ok || s.NextHop != "127.0.0.1:10026" || s.HeloName != "vault.test" {
		t.Errorf("Restorer() = %#v, want a Sender to the next hop", a.Restorer())
	}
	c.Forward.NextHop = ""
	if r := a.Restorer(); r != nil {
		t.Errorf("store-only Restorer() = %#v, want nil", r)
	}
}
