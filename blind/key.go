package blind

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// tokenKeyLabel is the HKDF info that separates the token key from every
// other key derived from the vault's index secret. Changing it changes
// every token: a catalog built under one label matches nothing under
// another, so it is fixed forever (TestTokenVector pins it).
const tokenKeyLabel = "mailvaultd catalog token key v1"

// Key is the token key. Token is safe for concurrent use; Clear is not
// safe to call while another goroutine uses the key.
type Key struct {
	key []byte
}

// NewKey derives the token key from the vault's index secret (32 bytes,
// sealer.LoadIndexKey) with HKDF-SHA256 under a label of its own, so that
// tokens never reveal anything about the index or fingerprint key. The
// caller keeps and clears indexSecret; the Key holds only the derived key.
func NewKey(indexSecret []byte) *Key {
	k, err := hkdf.Key(sha256.New, indexSecret, nil, tokenKeyLabel, 32)
	if err != nil {
		// hkdf.Key fails only for an output length SHA-256 cannot give,
		// and 32 bytes it always can.
		panic("blind: derive token key: " + err.Error())
	}
	return &Key{key: k}
}

// Token returns the token of term in field f. The term must already be
// normalised (Words, or the query-side functions in this package, which
// normalise for you).
func (k *Key) Token(f Field, term string) Token {
	return tokenOf(hmac.New(sha256.New, k.key), f, term)
}

// Clear overwrites the key. Tokens computed after Clear are of the zero
// key, useless to a caller but not a crash.
func (k *Key) Clear() { clear(k.key) }

// mac returns a fresh HMAC for a caller that computes many tokens in one
// goroutine (the extractor) and so can reuse one HMAC state.
func (k *Key) mac() hash.Hash { return hmac.New(sha256.New, k.key) }

// tokenOf computes HMAC-SHA256(key, field || 0x00 || term) with a mac keyed
// by the token key and keeps the first 8 bytes, big endian.
func tokenOf(mac hash.Hash, f Field, term string) Token {
	mac.Reset()
	var sum [sha256.Size]byte
	mac.Write([]byte(f))
	mac.Write([]byte{0})
	mac.Write([]byte(term))
	return Token(binary.BigEndian.Uint64(mac.Sum(sum[:0])))
}
