package catalog

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

// summaryLabel is the HKDF info of the summary key: a label of its own, so
// the key is independent of the index, fingerprint and token keys derived
// from the same secret.
const summaryLabel = "mailvaultd catalog summary key v1"

// summaryVersion is the first byte of every sealed summary: AES-256-GCM, a
// 12-byte random nonce, AAD = the version byte and the row's id.
const summaryVersion = 1

const summaryOverhead = 1 + 12 + 16

// ErrSummary is the one error Open gives for a sealed summary that does not
// open (wrong key, wrong row, altered, truncated, unknown version): it says
// nothing about which.
var ErrSummary = errors.New("catalog: summary does not open")

// SummaryBox seals and opens row summaries under the catalog's summary key.
// It is safe for concurrent use until Clear.
type SummaryBox struct {
	mu  sync.RWMutex
	key []byte // nil after Clear
}

// NewSummaryBox derives the summary key from the vault's 32-byte index
// secret (HKDF-SHA256, no salt, info summaryLabel).
func NewSummaryBox(indexSecret []byte) (*SummaryBox, error) {
	if len(indexSecret) != 32 {
		return nil, fmt.Errorf("catalog: summary box: index secret is %d bytes, want 32", len(indexSecret))
	}
	key, err := hkdf.Key(sha256.New, indexSecret, nil, summaryLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("catalog: summary box: %w", err)
	}
	return &SummaryBox{key: key}, nil
}

// aead returns a fresh AES-GCM for the key. A fresh one per call keeps
// no expanded key schedule alive that Clear could not wipe.
func (b *SummaryBox) aead() cipher.AEAD {
	if b.key == nil {
		panic("catalog: SummaryBox used after Clear")
	}
	block, err := aes.NewCipher(b.key)
	if err != nil {
		panic(err) // a 32-byte key never fails
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return g
}

func summaryAAD(id string) []byte {
	return append([]byte{summaryVersion}, id...)
}

// Seal encrypts plain for the row with id. It panics after Clear.
func (b *SummaryBox) Seal(id string, plain []byte) []byte {
	b.mu.RLock()
	defer b.mu.RUnlock()
	g := b.aead()
	out := make([]byte, 1+g.NonceSize(), summaryOverhead+len(plain))
	out[0] = summaryVersion
	rand.Read(out[1:]) // never fails (crypto/rand)
	return g.Seal(out, out[1:1+g.NonceSize()], plain, summaryAAD(id))
}

// Open decrypts a summary sealed for the row with id; a summary sealed for
// another row, or altered in any way, is ErrSummary. After Clear it is
// ErrSummary too.
func (b *SummaryBox) Open(id string, sealed []byte) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.key == nil || len(sealed) < summaryOverhead || sealed[0] != summaryVersion {
		return nil, ErrSummary
	}
	g := b.aead()
	plain, err := g.Open(nil, sealed[1:1+g.NonceSize()], sealed[1+g.NonceSize():], summaryAAD(id))
	if err != nil {
		return nil, ErrSummary
	}
	return plain, nil
}

// Clear wipes the key. Call it once nothing seals or opens any more.
func (b *SummaryBox) Clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.key)
	b.key = nil
}
