package sealer

// The byte layout of a sealed object, the payload-key derivation and the
// chunk nonces. docs/FORMAT.md is the normative description; keep the two in
// step.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

const (
	magic      = "MVLT"
	saltSize   = 32
	headerSize = len(magic) + 1 + 4 + saltSize // 41

	tagSize         = 16
	nonceSize       = 12
	dataKeySize     = 32
	cipherChunkSize = ChunkSize + tagSize

	// maxPlaintextSize bounds what a Writer accepts and what metadata may
	// claim (1 TiB, far above any mail); it keeps every size computation
	// well inside int64.
	maxPlaintextSize = 1 << 40

	maxPurposeLen = 64

	// payloadKeyDomain separates the payload-key derivation from every
	// other use of a data key.
	payloadKeyDomain = "mailvaultd/sealer/v1 payload key"
)

// header is the fixed-size header every sealed object starts with.
type header struct {
	version   byte
	chunkSize uint32
	salt      [saltSize]byte
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic...)
	b = append(b, h.version)
	b = binary.BigEndian.AppendUint32(b, h.chunkSize)
	return append(b, h.salt[:]...)
}

// parseHeader accepts only what this version writes. Its failures are
// reported as ErrDecrypt by the callers: the header is authenticated through
// the payload key, and a header that does not parse is just one more way of
// not being the object the metadata describes.
func parseHeader(b []byte) (header, bool) {
	var h header
	if len(b) != headerSize || string(b[:len(magic)]) != magic {
		return h, false
	}
	h.version = b[4]
	h.chunkSize = binary.BigEndian.Uint32(b[5:9])
	copy(h.salt[:], b[9:])
	if h.version != FormatVersion || h.chunkSize != ChunkSize {
		return h, false
	}
	return h, true
}

// chunkCount is the number of chunks of a payload of n plaintext bytes: an
// empty payload is one empty final chunk; otherwise the final chunk holds 1 to
// ChunkSize bytes.
func chunkCount(n int64) int64 {
	if n == 0 {
		return 1
	}
	return (n + ChunkSize - 1) / ChunkSize
}

// CiphertextSize is the object size of a sealed stream of n plaintext bytes.
// It returns -1 for a negative n or one beyond the format's limit (1 TiB).
func CiphertextSize(n int64) int64 {
	if n < 0 || n > maxPlaintextSize {
		return -1
	}
	return int64(headerSize) + n + chunkCount(n)*tagSize
}

// plaintextSizeOf inverts CiphertextSize; ok is false when no plaintext size
// gives an object of exactly objectSize bytes.
func plaintextSizeOf(objectSize int64) (n int64, ok bool) {
	if objectSize < int64(headerSize)+tagSize || objectSize > CiphertextSize(maxPlaintextSize) {
		return 0, false
	}
	p := objectSize - int64(headerSize)
	k := (p + cipherChunkSize - 1) / cipherChunkSize
	n = p - k*tagSize
	if n < 0 || CiphertextSize(n) != objectSize {
		return 0, false
	}
	return n, true
}

// chunkOffset is where chunk i starts in the object.
func chunkOffset(i int64) int64 {
	return int64(headerSize) + i*cipherChunkSize
}

// chunkCipherLen is the ciphertext length of chunk i of a payload of size
// plaintext bytes.
func chunkCipherLen(i, size int64) int64 {
	if i == chunkCount(size)-1 {
		return size - i*ChunkSize + tagSize
	}
	return cipherChunkSize
}

// chunkNonce is the STREAM nonce of chunk i: an 11-byte big-endian counter
// followed by the last-chunk flag.
func chunkNonce(i int64, last bool) [nonceSize]byte {
	var n [nonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], uint64(i))
	if last {
		n[11] = 1
	}
	return n
}

func checkPurpose(purpose string) error {
	if purpose == "" || len(purpose) > maxPurposeLen {
		return fmt.Errorf("sealer: purpose must be 1 to %d bytes", maxPurposeLen)
	}
	return nil
}

// payloadInfo is the HKDF info: the domain, the purpose, the whole header and
// the canonical encoding of every metadata field known when sealing starts.
// Changing any of them changes the payload key, so every chunk fails.
func payloadInfo(hdr []byte, m *Metadata, purpose string) []byte {
	b := make([]byte, 0, 256+len(m.KeyID)+len(m.WrappedKey))
	b = appendLP(b, payloadKeyDomain)
	b = appendLP(b, purpose)
	b = appendLP(b, hdr)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Version))
	b = appendLP(b, m.Provider)
	b = appendLP(b, m.KeyID)
	b = appendLP(b, m.WrappedKey)
	return appendContextBinary(b, m.Context)
}

// newPayloadAEAD derives the payload key and returns the chunk cipher. The
// derived key bytes are cleared before it returns; the AES key schedule lives
// on inside the AEAD until the caller drops it.
func newPayloadAEAD(dataKey, hdr []byte, m *Metadata, purpose string) (cipher.AEAD, error) {
	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("sealer: data key is %d bytes, want %d", len(dataKey), dataKeySize)
	}
	salt := hdr[headerSize-saltSize:]
	key, err := hkdf.Key(sha256.New, dataKey, salt, string(payloadInfo(hdr, m, purpose)), 32)
	if err != nil {
		return nil, fmt.Errorf("sealer: derive payload key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealer: payload cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealer: payload cipher: %w", err)
	}
	return aead, nil
}

// appendLP appends a 4-byte big-endian length and then s.
func appendLP[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendContextBinary is the canonical binary form of an encryption context:
// the entry count, then each key and value length-prefixed, keys in
// ascending byte order.
func appendContextBinary(b []byte, c map[string]string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
	for _, k := range slices.Sorted(maps.Keys(c)) {
		b = appendLP(b, k)
		b = appendLP(b, c[k])
	}
	return b
}
