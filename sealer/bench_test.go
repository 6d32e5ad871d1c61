package sealer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"testing"
)

var benchSizes = []struct {
	name string
	n    int
}{
	{"64KiB", 64 << 10},
	{"25MiB", 25 << 20},
}

func BenchmarkSeal(b *testing.B) {
	dk := testDataKey("bench")
	for _, sz := range benchSizes {
		plaintext := plaintextOf(sz.n)
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				w, err := NewWriter(io.Discard, dk, "message")
				if err != nil {
					b.Fatal(err)
				}
				w.Write(plaintext)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	dk := testDataKey("bench")
	ctx := context.Background()
	for _, sz := range benchSizes {
		object, meta := seal(b, dk, "message", plaintextOf(sz.n))
		src := &memSource{data: object}
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			buf := make([]byte, 32<<10)
			for b.Loop() {
				src.reset()
				s, err := Open(ctx, src.source, int64(len(object)), meta, dk, "message")
				if err != nil {
					b.Fatal(err)
				}
				r, err := s.NewReader(ctx, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}

// BenchmarkRawAESGCM is the floor the format is measured against: plain
// AES-256-GCM over the same payload in 64 KiB chunks, no framing, no I/O.
func BenchmarkRawAESGCM(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	for _, sz := range benchSizes {
		plaintext := plaintextOf(sz.n)
		out := make([]byte, 0, ChunkSize+16)
		sealed := aead.Seal(nil, nonce, plaintext[:ChunkSize], nil)
		b.Run("seal-"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				for p := plaintext; len(p) > 0; {
					k := min(len(p), ChunkSize)
					out = aead.Seal(out[:0], nonce, p[:k], nil)
					p = p[k:]
				}
			}
		})
		b.Run("open-"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				for i := 0; i < sz.n; i += ChunkSize {
					var err error
					if out, err = aead.Open(out[:0], nonce, sealed, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
