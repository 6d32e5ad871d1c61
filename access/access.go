// Package access owns the values retrieval exchanges with the stores of its
// users and of its audit records: who a caller is (Principal, Role, the hash
// of a token) and what one access was (Event, its actions and outcomes).
// retrieval declares the interfaces; the users file (usersfile), the audit
// file (auditlog) and later a database implement them in these terms.
//
// access holds no behaviour beyond hashing a token and checking the form of a
// mailbox: it never authenticates, never authorises and never writes
// anything.
package access

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
)

// Role is what a user may read.
type Role string

const (
	// RoleReader reads the messages of their own mailboxes.
	RoleReader Role = "reader"
	// RoleAuditor reads every message.
	RoleAuditor Role = "auditor"
)

// Principal is an authenticated user.
type Principal struct {
	Name      string
	Role      Role
	Mailboxes []string // normalised (archive.NormalizeAddress); empty for an auditor
}

// TokenHash is the SHA-256 of a bearer token as presented: what a store of
// users keeps instead of the token, and what it is asked about.
type TokenHash [sha256.Size]byte

// HashToken returns the hash a store of users keeps for token.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// Audit actions.
const (
	ActionList     = "list"
	ActionManifest = "manifest"
	ActionRaw      = "raw"
	ActionPart     = "part"
	ActionView     = "view"    // the web page's message view (manifest and text body)
	ActionSearch   = "search"  // a catalog search; Query holds its text
	ActionSignIn   = "signin"  // a failed or throttled sign-in or token
	ActionExport   = "export"  // one message of an export (mbox or zip)
	ActionRestore  = "restore" // a message re-sent to a mailbox
	// ActionDenials stands for Count unauthenticated requests from Remote
	// that were not recorded one by one (retrieval bounds those per
	// address and minute).
	ActionDenials = "denials"
)

// Audit outcomes.
const (
	OutcomeOK              = "ok"
	OutcomeDenied          = "denied"          // authenticated, not allowed: answered 404 (403 for a mailbox)
	OutcomeNotFound        = "not_found"       // no such message or part
	OutcomeUnauthenticated = "unauthenticated" // no token or a bad one: 401
	OutcomeThrottled       = "throttled"       // too many failures from the address: 429
	OutcomeBadRequest      = "bad_request"     // a malformed id, part number or query: 400
	OutcomeError           = "error"           // an internal failure (500), or the stream broke off
)

// Event is one access to the archive, as the audit log records it.
type Event struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user"`
	Role      Role      `json:"role"`
	Action    string    `json:"action"`
	MessageID string    `json:"message_id,omitempty"`
	Part      *int      `json:"part,omitempty"`
	Mailbox   string    `json:"mailbox,omitempty"`
	// Query is the search (listing.Query.Q) of a list or an export: the
	// audit log then holds what a user searched for.
	Query string `json:"query,omitempty"`
	// To is where a restore re-sent the message.
	To      string `json:"to,omitempty"`
	Bytes   int64  `json:"bytes"` // plaintext bytes served
	Remote  string `json:"remote"`
	Outcome string `json:"outcome"`
	Count   int64  `json:"count,omitempty"` // ActionDenials only
}

// MaxMailboxBytes bounds a mailbox address.
const MaxMailboxBytes = 320

// ValidateMailbox checks that mb can be a principal's mailbox: an address of
// 1-320 bytes with an @ and without spaces, control characters or any of
// <>, (stores of users hold only such mailboxes, and retrieval lists no
// other).
func ValidateMailbox(mb string) error {
	if mb == "" || len(mb) > MaxMailboxBytes {
		return fmt.Errorf("mailbox %q: must be 1-%d bytes", mb, MaxMailboxBytes)
	}
	for _, r := range mb {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == ',' {
			return fmt.Errorf("mailbox %q: contains a space, a control character or one of <>,", mb)
		}
	}
	if !strings.Contains(mb, "@") {
		return fmt.Errorf("mailbox %q: not an address (no @)", mb)
	}
	return nil
}
