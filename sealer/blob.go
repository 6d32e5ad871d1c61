package sealer

import (
	"bytes"
	"fmt"
)

// maxBlobSize caps a sealed blob (ciphertext): blobs are read whole into
// memory, so this is what bounds OpenBlob.
const maxBlobSize = 16 << 20

// SealBlob seals a small object in memory under dk (fresh salt).
//
// The result is a sealed object in the same format as a stream, whose
// plaintext size follows from its length. The blob is bound to purpose and to
// the metadata of dk (provider, key id, wrapped key, context), so it opens only
// beside the message it was sealed for.
func SealBlob(dk *DataKey, purpose string, plaintext []byte) ([]byte, error) {
	size := CiphertextSize(int64(len(plaintext)))
	if size < 0 || size > maxBlobSize {
		return nil, fmt.Errorf("sealer: blob of %d bytes is over the %d-byte limit", len(plaintext), maxBlobSize)
	}
	var buf bytes.Buffer
	buf.Grow(int(size))
	w, err := NewWriter(&buf, dk, purpose)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// OpenBlob opens what SealBlob produced; meta is the metadata of the message
// the blob belongs to (its PlaintextSize is ignored).
//
// Nothing is returned unless every chunk authenticates.
func OpenBlob(dk *DataKey, meta Metadata, purpose string, blob []byte) ([]byte, error) {
	if len(blob) > maxBlobSize {
		return nil, fmt.Errorf("sealer: blob of %d bytes is over the %d-byte limit", len(blob), maxBlobSize)
	}
	meta.PlaintextSize = 0
	if err := meta.validate(); err != nil {
		return nil, err
	}
	if err := checkPurpose(purpose); err != nil {
		return nil, err
	}
	if dk == nil || len(dk.Plaintext) != dataKeySize {
		return nil, fmt.Errorf("sealer: data key is not %d bytes", dataKeySize)
	}
	size, ok := plaintextSizeOf(int64(len(blob)))
	if !ok {
		return nil, ErrDecrypt
	}
	hdr := blob[:headerSize]
	if _, ok := parseHeader(hdr); !ok {
		return nil, ErrDecrypt
	}
	aead, err := newPayloadAEAD(dk.Plaintext, hdr, &meta, purpose)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	final := chunkCount(size) - 1
	for i := int64(0); i <= final; i++ {
		off := chunkOffset(i)
		ct := blob[off : off+chunkCipherLen(i, size)]
		nonce := chunkNonce(i, i == final)
		next, err := aead.Open(out, nonce[:], ct, nil)
		if err != nil {
			clear(out[:cap(out)])
			return nil, ErrDecrypt
		}
		out = next
	}
	return out, nil
}
