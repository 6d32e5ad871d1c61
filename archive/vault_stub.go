package archive

// The Vault API; the helper implementing the package replaces the bodies.

import (
	"context"
	"hash"
	"io"
	"time"
)

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	From string
	To   []string
}

// Record is what Commit stores beside the sealed message.
type Record struct {
	Envelope    Envelope
	ReceivedAt  time.Time
	Meta        map[string]string // object metadata of the message (sealer.Metadata.Map())
	Manifest    []byte            // the sealed manifest
	Fingerprint []byte            // Vault.Fingerprint over envelope and message bytes
}

// Entry is one line of a listing.
type Entry struct {
	ID         string
	ReceivedAt time.Time
}

// Vault lays sealed messages out in a Store.
type Vault struct{}

// NewVault returns a Vault over s; indexKey keys every hash that stands in for
// an address or a message (it must be secret, 32 bytes).
func NewVault(s Store, indexKey []byte) *Vault { panic("unimplemented") }

// Store returns the underlying store.
func (v *Vault) Store() Store { panic("unimplemented") }

// NewID returns a new archive id for a message received at t: sortable by
// time, unguessable, [0-9a-z] only.
func NewID(t time.Time) string { panic("unimplemented") }

// ValidID reports whether s has the form of an archive id (use it before any
// store access with a caller-supplied id).
func ValidID(s string) bool { panic("unimplemented") }

// NormalizeAddress is the form addresses are compared and indexed in.
func NormalizeAddress(addr string) string { panic("unimplemented") }

// Fingerprint returns a keyed hash seeded with env; the caller writes the
// message bytes into it. Equal envelopes and bytes give equal fingerprints.
func (v *Vault) Fingerprint(env Envelope) hash.Hash { panic("unimplemented") }

// Deposit is a message being archived.
type Deposit struct{}

// Begin starts the message object of archive id id.
func (v *Vault) Begin(ctx context.Context, id string) (*Deposit, error) { panic("unimplemented") }

// Write writes sealed message bytes.
func (d *Deposit) Write(p []byte) (int, error) { panic("unimplemented") }

// Commit stores the message, its manifest, the fingerprint marker and the
// index entries. If a message with the same fingerprint is already archived,
// nothing new is stored and Commit returns that message's id with duplicate
// set (and makes sure its index entries exist).
func (d *Deposit) Commit(ctx context.Context, r Record) (id string, duplicate bool, err error) {
	panic("unimplemented")
}

// Abort discards an uncommitted deposit.
func (d *Deposit) Abort() { panic("unimplemented") }

// Undo removes what Commit stored (when forwarding fails after the archive
// commit); for a duplicate it does nothing.
func (d *Deposit) Undo(ctx context.Context) error { panic("unimplemented") }

// Head returns the message object's size and metadata.
func (v *Vault) Head(ctx context.Context, id string) (ObjectInfo, error) { panic("unimplemented") }

// ReadMessage reads sealed message bytes [off, off+n).
func (v *Vault) ReadMessage(ctx context.Context, id string, off, n int64) (io.ReadCloser, error) {
	panic("unimplemented")
}

// Manifest returns the sealed manifest of id.
func (v *Vault) Manifest(ctx context.Context, id string) ([]byte, error) { panic("unimplemented") }

// List returns entries of mailbox ("" lists every message) received in
// [since, until) (zero values: unbounded), newest first, at most limit, and a
// cursor for the next page ("" when there is none).
func (v *Vault) List(ctx context.Context, mailbox string, since, until time.Time, limit int, cursor string) ([]Entry, string, error) {
	panic("unimplemented")
}
