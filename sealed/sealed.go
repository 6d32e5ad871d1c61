// Package sealed owns the sealed message: one archived message as the Vault
// holds it (a sealed stream, its sealed Manifest and the wrapped data key in
// the object metadata) and both directions over it. Begin and Writer seal a
// stream under a fresh data key and commit it with its manifest; Open and
// Message unwrap the key, open the manifest and read any plaintext range.
// Every caller that writes or reads an archived message (the delivery core,
// retrieval, mailvaultd get, importers, rewrap, catalog rebuild) goes through
// here, so the steps and the checks between them are written once.
//
// sealed never listens, never knows SMTP or HTTP, and never decides what a
// failure means to a client: it reports which collaborator failed (the key
// provider or the store, see Stage) and leaves the answer to its caller. The
// cryptography is package sealer's, the object layout package archive's.
package sealed

import (
	"errors"
	"fmt"
	"time"
)

// Stage names the collaborator a sealing failure came from, so that a
// caller can tell a key-service outage from a store outage.
type Stage string

const (
	StageKeys     Stage = "keys"     // the key provider
	StageStore    Stage = "store"    // the Vault and its Store
	StageInternal Stage = "internal" // encoding or sealing in memory: a bug
)

// Error is a failure of the seal side (Begin, Writer).
type Error struct {
	Stage Stage
	Op    string // "generate data key", "begin", "write", "commit", ...
	ID    string // the archive id
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("sealed: %s %s: %v", e.Op, e.ID, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// StageOf returns the stage of a seal-side error, or "" for any other error.
func StageOf(err error) Stage {
	var e *Error
	if errors.As(err, &e) {
		return e.Stage
	}
	return ""
}

// undoTimeout bounds Writer.Undo, which runs even when the caller's context
// is done (the delivery failed, possibly by its deadline): the same bound as
// the Vault gives the clean-up of a failed Commit.
const undoTimeout = 30 * time.Second

// Purposes bound into the key derivation of the two objects of a message, so
// that one cannot be served as the other.
const (
	purposeMessage  = "message"
	purposeManifest = "manifest"
)
