package retrieval

import (
	"slices"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/listing"
)

// # Listing
//
// The lister (Options.Lister) makes the page; retrieval decides what to ask
// for (mailboxesFor) and checks every message it returns against the caller
// (readableOnly), so that a lister whose index is wrong can show a reader
// nothing that is not theirs.

// mailboxesFor fills q with what to list for p, given the requested mailbox
// ("" for all of p's). ok is false if p may not list it.
func mailboxesFor(p *principal, requested string, q *listing.Query) (ok bool) {
	if requested != "" {
		n := archive.NormalizeAddress(requested)
		if n == "" || (p.role != access.RoleAuditor && !p.hasMailbox(n)) {
			return false
		}
		q.Mailboxes = []string{n}
		return true
	}
	if p.role == access.RoleAuditor {
		q.All = true
		return true
	}
	q.Mailboxes = slices.Clone(p.mailboxes)
	return true
}

// readableOnly returns the messages of a page that p may read.
func (h *handler) readableOnly(p *principal, msgs []listing.Message) []listing.Message {
	out := msgs[:0:0]
	for _, m := range msgs {
		if !p.mayRead(m.From, m.To) {
			// The index put it in one of p's mailboxes, but its envelope
			// does not say so: trust the sealed envelope.
			h.log.Warn("retrieval: listed message not readable by its mailbox owner; left out", "message_id", m.ID, "user", p.name)
			continue
		}
		out = append(out, m)
	}
	return out
}
