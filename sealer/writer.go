package sealer

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

var errWriterClosed = errors.New("sealer: write to a closed Writer")

// Writer seals a stream. It writes the header to dst at once, then a chunk
// every ChunkSize bytes; Close writes the final chunk (it does not close dst).
//
// A Writer holds at most one chunk of plaintext. The first error writing to
// dst is returned by every later call.
type Writer struct {
	dst     io.Writer
	aead    cipher.AEAD // nil once closed
	meta    Metadata
	buf     []byte // pending plaintext, at most ChunkSize bytes
	out     []byte // ciphertext scratch
	counter int64  // index of the next chunk
	size    int64  // plaintext bytes accepted
	closed  bool
	err     error
}

// NewWriter starts a sealed stream under dk. purpose ("message", "manifest")
// is bound into the key derivation so that objects cannot be swapped.
//
// The payload key is derived at once: dk may be cleared as soon as NewWriter
// returns.
func NewWriter(dst io.Writer, dk *DataKey, purpose string) (*Writer, error) {
	return newWriter(dst, dk, purpose, rand.Reader)
}

// newWriter takes the salt's source of randomness so that the format's test
// vector can be reproduced; everything else passes crypto/rand.Reader.
func newWriter(dst io.Writer, dk *DataKey, purpose string, random io.Reader) (*Writer, error) {
	meta, err := metadataFor(dk)
	if err != nil {
		return nil, err
	}
	if err := checkPurpose(purpose); err != nil {
		return nil, err
	}
	h := header{version: FormatVersion, chunkSize: ChunkSize}
	if _, err := io.ReadFull(random, h.salt[:]); err != nil {
		return nil, fmt.Errorf("sealer: salt: %w", err)
	}
	hdr := h.marshal()
	aead, err := newPayloadAEAD(dk.Plaintext, hdr, &meta, purpose)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(hdr); err != nil {
		return nil, fmt.Errorf("sealer: write header: %w", err)
	}
	return &Writer{
		dst:  dst,
		aead: aead,
		meta: meta,
		buf:  make([]byte, 0, ChunkSize),
		out:  make([]byte, 0, cipherChunkSize),
	}, nil
}

// Write buffers p and seals every chunk once the next byte after it is known
// to exist (the final chunk may be full, so a full buffer is not enough).
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > maxPlaintextSize-w.size {
		return 0, fmt.Errorf("sealer: stream longer than %d bytes", int64(maxPlaintextSize))
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			if err := w.seal(w.buf, false); err != nil {
				return n, err
			}
			w.buf = w.buf[:0]
		}
		if len(w.buf) == 0 && len(p) > ChunkSize {
			// A whole chunk with more to come: seal it in place.
			if err := w.seal(p[:ChunkSize], false); err != nil {
				return n, err
			}
			n += ChunkSize
			w.size += ChunkSize
			p = p[ChunkSize:]
			continue
		}
		k := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		n += k
		w.size += int64(k)
		p = p[k:]
	}
	return n, nil
}

func (w *Writer) seal(plaintext []byte, last bool) error {
	nonce := chunkNonce(w.counter, last)
	w.out = w.aead.Seal(w.out[:0], nonce[:], plaintext, nil)
	if _, err := w.dst.Write(w.out); err != nil {
		w.err = fmt.Errorf("sealer: write chunk %d: %w", w.counter, err)
		return w.err
	}
	w.counter++
	return nil
}

// Close seals the final chunk, records the plaintext size and drops the
// payload key. It does not close dst. Closing again returns the first
// Close's result.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		w.seal(w.buf, true) // sets w.err
	}
	w.meta.PlaintextSize = w.size
	clear(w.buf[:cap(w.buf)])
	w.buf, w.out, w.aead = nil, nil, nil
	return w.err
}

// Metadata returns the metadata for the finished stream (valid after Close;
// before, PlaintextSize counts the bytes written so far).
func (w *Writer) Metadata() Metadata {
	m := w.meta
	m.PlaintextSize = w.size
	m.WrappedKey = slices.Clone(m.WrappedKey)
	m.Context = maps.Clone(m.Context)
	return m
}
