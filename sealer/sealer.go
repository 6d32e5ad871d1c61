// Package sealer owns the cryptography of mailvaultd: key providers, the
// per-message data-key lifecycle, and the streaming encrypted format that every
// archived object is written in (docs/FORMAT.md).
//
// sealer never sees an SMTP connection, an HTTP request or a storage backend:
// it reads and writes plain io streams, and reads ciphertext ranges through a
// RangeSource that the caller supplies.
//
// # Keys
//
// A KeyProvider hands out fresh 256-bit data keys, each bound to an encryption
// context that names the archive id, and unwraps them again. The plaintext of a
// DataKey must be cleared with Clear as soon as it is no longer needed.
//
// # Format
//
// NewWriter seals a stream in fixed-size AES-256-GCM chunks; Open gives random
// access to any plaintext range, authenticating each chunk before releasing a
// byte of it. SealBlob and OpenBlob do the same for small in-memory objects
// such as the manifest.
package sealer

import (
	"context"
	"errors"
	"io"
)

// FormatVersion is the version of the encrypted format written by this package.
const FormatVersion = 1

// ChunkSize is the plaintext size of every chunk but the last.
const ChunkSize = 64 * 1024

// ContextArchiveID is the encryption-context key that names the archive id.
const ContextArchiveID = "mailvaultd:archive-id"

// ErrDecrypt is the one error every authentication failure is reported as:
// tampered ciphertext, header or metadata, a wrong key or a wrong context. It
// deliberately says nothing about which.
var ErrDecrypt = errors.New("sealer: decryption failed")

// ArchiveContext returns the encryption context for the object of archive id.
func ArchiveContext(id string) map[string]string {
	return map[string]string{ContextArchiveID: id}
}

// DataKey is one per-message data key.
type DataKey struct {
	Plaintext []byte            // 32 bytes; cleared by Clear
	Wrapped   []byte            // the key wrapped by the provider; safe to store
	KeyID     string            // the provider's id of the wrapping key (e.g. "local:2", a KMS key ARN)
	Provider  string            // the provider's Name()
	Context   map[string]string // the encryption context it is bound to
}

// Clear zeroes the plaintext key.
func (k *DataKey) Clear() { clear(k.Plaintext) }

// KeyProvider issues and unwraps data keys.
type KeyProvider interface {
	// Name is the provider's name as stored in metadata ("local", "awskms").
	Name() string
	// GenerateDataKey returns a fresh 256-bit key bound to encCtx.
	GenerateDataKey(ctx context.Context, encCtx map[string]string) (*DataKey, error)
	// Decrypt unwraps a key produced by GenerateDataKey. A wrong context or a
	// tampered wrapped key fails.
	Decrypt(ctx context.Context, keyID string, wrapped []byte, encCtx map[string]string) ([]byte, error)
}

// Pinger is implemented by providers that can say whether their key service
// answers (used by /readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Metadata is what is stored beside a sealed object (object user metadata).
// Every field is bound into the ciphertext: changing any of them makes Open
// fail with ErrDecrypt.
type Metadata struct {
	Version       int
	Provider      string
	KeyID         string
	WrappedKey    []byte
	Context       map[string]string
	PlaintextSize int64
}

// RangeSource reads n bytes of ciphertext starting at off (n < 0: to the end).
type RangeSource func(ctx context.Context, off, n int64) (io.ReadCloser, error)
