package pgpmime_test

import (
	"io"
	"log/slog"
	"time"

	"github.com/mailvault/mailvaultd/pgpmime"
)

// The forwarding stage, sketched. open reads the received message from its
// first byte; send runs one next-hop transaction for a group of recipients,
// with body writing its DATA; refuse answers 550 5.7.1 for a recipient.
func Example() {
	var (
		open   func() io.Reader
		rcpts  []string
		send   func(rcpts []string, body func(data io.Writer) error) error
		refuse func(rcpt string)
		logger *slog.Logger
	)

	policy, err := pgpmime.ParsePolicy("opportunistic")
	if err != nil {
		return // a config error: name the key
	}
	// At start-up and on SIGHUP; on a failed reload keep the old keyring.
	kr, err := pgpmime.LoadKeyring("/etc/mailvaultd/openpgp", nil, time.Now(), logger)
	if err != nil {
		return
	}

	prot, msg, err := pgpmime.Sniff(open())
	if err != nil {
		return
	}
	if prot.Encrypted() { // unchanged, to everyone, in one transaction
		send(rcpts, func(w io.Writer) error { _, err := io.Copy(w, msg); return err })
		return
	}

	encrypted, keys, plain, refused := pgpmime.Plan(rcpts, kr, policy)
	for _, r := range refused {
		refuse(r)
	}
	if len(encrypted) > 0 {
		// Outer headers from the top of the message (bounded read).
		top := make([]byte, pgpmime.MaxHeaderBytes)
		n, _ := io.ReadFull(open(), top)
		outer := pgpmime.ParseOuterHeaders(top[:n])
		send(encrypted, func(data io.Writer) error {
			pw, err := pgpmime.NewPGPMIMEWriter(data, outer, keys, pgpmime.Options{})
			if err != nil {
				return err // abandon this transaction (RSET / drop the connection)
			}
			if _, err := io.Copy(pw, open()); err != nil {
				return err
			}
			return pw.Close()
		})
	}
	if len(plain) > 0 {
		send(plain, func(data io.Writer) error { _, err := io.Copy(data, open()); return err })
	}
}
