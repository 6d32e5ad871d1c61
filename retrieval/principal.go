package retrieval

import (
	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
)

// maxTokenChars bounds what a client may present before it is hashed.
const maxTokenChars = 256

// principal is an authenticated caller, ready for authorisation.
type principal struct {
	name      string
	role      access.Role
	mailboxes []string            // normalised, in the store's order
	boxes     map[string]struct{} // normalised
	hash      access.TokenHash    // of the token it authenticated with
}

// newPrincipal normalises p's mailboxes itself: authorisation compares them
// with normalised envelope addresses, whatever store p came from.
func newPrincipal(p access.Principal, h access.TokenHash) *principal {
	pr := &principal{name: p.Name, role: p.Role, boxes: make(map[string]struct{}, len(p.Mailboxes)), hash: h}
	for _, mb := range p.Mailboxes {
		n := archive.NormalizeAddress(mb)
		if _, dup := pr.boxes[n]; dup || n == "" {
			continue
		}
		pr.boxes[n] = struct{}{}
		pr.mailboxes = append(pr.mailboxes, n)
	}
	return pr
}

// authenticateToken returns the user whose token is token, or nil.
func (h *handler) authenticateToken(token string) *principal {
	if token == "" || len(token) > maxTokenChars {
		return nil
	}
	sum := access.HashToken(token)
	p, ok := h.users.Authenticate(sum)
	if !ok {
		return nil
	}
	return newPrincipal(p, sum)
}

// mayRead reports whether p may read a message with this envelope: an
// auditor any, a reader one whose sender or a recipient is theirs.
func (p *principal) mayRead(from string, to []string) bool {
	if p.role == access.RoleAuditor {
		return true
	}
	if _, ok := p.boxes[archive.NormalizeAddress(from)]; ok && from != "" {
		return true
	}
	for _, rcpt := range to {
		if _, ok := p.boxes[archive.NormalizeAddress(rcpt)]; ok {
			return true
		}
	}
	return false
}

func (p *principal) hasMailbox(normalised string) bool {
	_, ok := p.boxes[normalised]
	return ok
}
