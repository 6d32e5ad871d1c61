// Package archive owns where sealed mail lives: the Store interface with its
// fs and s3 backends, and the Vault on top of it, which lays out objects
// (message, manifest, per-mailbox index entries, fingerprint markers), keeps
// deliveries idempotent and lists a mailbox by time.
//
// archive never decrypts and never sees a plaintext message byte: it stores
// and returns ciphertext that the sealer produced, and keyed hashes.
package archive

import (
	"context"
	"errors"
	"io"
	"time"
)

var (
	// ErrNotFound is returned for a key that does not exist.
	ErrNotFound = errors.New("archive: not found")
	// ErrExists is returned by a Commit with IfAbsent when the key exists.
	ErrExists = errors.New("archive: already exists")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Metadata map[string]string // nil from List
	Modified time.Time
}

// Store is a flat object store of immutable objects.
//
// Keys are checked with ValidateKey and metadata with ValidateMetadata by
// every backend; package storetest is the suite every backend passes.
type Store interface {
	// Create starts writing key. Nothing is visible under key until Commit.
	Create(ctx context.Context, key string) (ObjectWriter, error)
	// Get reads n bytes of key from off (n < 0: to the end). A range that
	// reaches past the end returns what exists; one that starts at or past
	// the end returns no bytes. A missing key is ErrNotFound.
	Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Head returns the size and metadata of key.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// List returns up to limit keys under prefix that sort after startAfter,
	// in ascending key order (limit <= 0: 1000). It returns fewer than limit
	// only when no more keys match.
	List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ObjectWriter is an object being written. Commit or Abort must be called;
// Abort may always be called too (defer it to release a writer on any path).
type ObjectWriter interface {
	io.Writer
	// Commit makes the object durable and visible under its key with meta.
	// With ifAbsent it fails with ErrExists if the key already exists.
	Commit(ctx context.Context, meta map[string]string, ifAbsent bool) error
	// Abort discards everything written. It is a no-op after Commit or
	// Abort, and safe to call after a failed Commit.
	Abort() error
}

// Pinger is implemented by stores that can say whether they answer (/readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}
