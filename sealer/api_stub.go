package sealer

// This file lists the rest of the package's API; the helper implementing the
// package replaces the bodies (and may move them to other files).

import (
	"context"
	"io"
)

// Map renders m as object metadata (keys "mv-version", "mv-provider",
// "mv-key-id", "mv-wrapped-key" (base64), "mv-context" (canonical JSON),
// "mv-plaintext-size").
func (m Metadata) Map() map[string]string { panic("unimplemented") }

// ParseMetadata is the inverse of Map; it rejects missing fields, unknown
// versions and over-long values (the wrapped key is capped at 1 KiB).
func ParseMetadata(kv map[string]string) (Metadata, error) { panic("unimplemented") }

// Writer seals a stream. It writes the header to dst at once, then a chunk
// every ChunkSize bytes; Close writes the final chunk (it does not close dst).
type Writer struct{}

// NewWriter starts a sealed stream under dk. purpose ("message", "manifest")
// is bound into the key derivation so that objects cannot be swapped.
func NewWriter(dst io.Writer, dk *DataKey, purpose string) (*Writer, error) {
	panic("unimplemented")
}
func (w *Writer) Write(p []byte) (int, error) { panic("unimplemented") }
func (w *Writer) Close() error                { panic("unimplemented") }

// Metadata returns the metadata for the finished stream (valid after Close).
func (w *Writer) Metadata() Metadata { panic("unimplemented") }

// CiphertextSize is the object size of a sealed stream of n plaintext bytes.
func CiphertextSize(n int64) int64 { panic("unimplemented") }

// Unwrap asks kp for the plaintext data key of meta. The caller must Clear it.
func Unwrap(ctx context.Context, kp KeyProvider, meta Metadata) (*DataKey, error) {
	panic("unimplemented")
}

// Sealed is an opened sealed object giving authenticated random access.
type Sealed struct{}

// Open reads and checks the header of the object behind src (whose total
// size is objectSize) against meta, deriving the payload key from dk.
func Open(ctx context.Context, src RangeSource, objectSize int64, meta Metadata, dk *DataKey, purpose string) (*Sealed, error) {
	panic("unimplemented")
}

// Size is the plaintext size.
func (s *Sealed) Size() int64 { panic("unimplemented") }

// NewReader returns plaintext bytes [off, off+n) (n < 0: to the end), reading
// only the chunks that cover them. No byte is returned before its chunk has
// authenticated; a failure is ErrDecrypt.
func (s *Sealed) NewReader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	panic("unimplemented")
}

// SealBlob seals a small object in memory under dk (fresh salt).
func SealBlob(dk *DataKey, purpose string, plaintext []byte) ([]byte, error) {
	panic("unimplemented")
}

// OpenBlob opens what SealBlob produced; meta is the metadata of the message
// the blob belongs to (its PlaintextSize is ignored).
func OpenBlob(dk *DataKey, meta Metadata, purpose string, blob []byte) ([]byte, error) {
	panic("unimplemented")
}

// Keyring is the local key provider: a JSON file (mode 0600, enforced on
// load) of versioned 256-bit master keys plus a separate 256-bit index key
// used for keyed hashes of addresses and message fingerprints. New data keys
// are wrapped under the newest version; older versions still unwrap.
type Keyring struct{}

var _ KeyProvider = (*Keyring)(nil)

// InitKeyring creates a new keyring at path; it fails if path exists.
func InitKeyring(path string) error { panic("unimplemented") }

// RotateKeyring adds a new master key version and returns its number.
func RotateKeyring(path string) (int, error) { panic("unimplemented") }

// LoadKeyring reads and validates the keyring at path.
func LoadKeyring(path string) (*Keyring, error) { panic("unimplemented") }

// IndexKey is the 256-bit key for keyed hashes (HMAC-SHA256); never a data key.
func (k *Keyring) IndexKey() []byte { panic("unimplemented") }

func (k *Keyring) Name() string { return "local" }
func (k *Keyring) GenerateDataKey(ctx context.Context, encCtx map[string]string) (*DataKey, error) {
	panic("unimplemented")
}
func (k *Keyring) Decrypt(ctx context.Context, keyID string, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	panic("unimplemented")
}
