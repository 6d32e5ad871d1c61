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

var (
	errWriterClosed  = errors.New("sealer: write to a closed Writer")
	errWriterAborted = errors.New("sealer: Writer aborted")
)

// Writer seals a stream. It writes the header to dst at once, then a chunk
// every ChunkSize bytes; Close writes the final chunk (it does not close dst).
//
// A Writer holds at most one chunk of plaintext, in a pooled buffer that it
// clears and gives back on Close or Abort; a Writer dropped without either
// leaves that buffer (and the plaintext in it) to the garbage collector. The
// first error writing to dst is returned by every later call.
type Writer struct {
	dst  io.Writer
	aead cipher.AEAD // nil once closed
	meta Metadata
	// cb is the chunk buffer, nil once closed. Chunks are sealed in place:
	// buf (pending plaintext, at most ChunkSize bytes) is a prefix of cb,
	// and the ciphertext of each chunk is written over it.
	cb      *chunkBuf
	buf     []byte
	dirty   int   // bytes of cb ever written: what release must clear
	counter int64 // index of the next chunk
	size    int64 // plaintext bytes accepted
	// nonce lives in the Writer because a local array passed to the AEAD
	// interface escapes: one heap allocation per chunk.
	nonce  [nonceSize]byte
	closed bool
	err    error
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
	cb := getChunkBuf()
	return &Writer{dst: dst, aead: aead, meta: meta, cb: cb, buf: cb[:0]}, nil
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
		}
		if len(w.buf) == 0 && len(p) > ChunkSize {
			// A whole chunk with more to come: seal it straight from p,
			// without copying it into the buffer first.
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

// seal encrypts plaintext (either buf itself, sealed in place, or a chunk of
// the caller's p) into cb, writes it to dst and empties buf.
func (w *Writer) seal(plaintext []byte, last bool) error {
	w.nonce = chunkNonce(w.counter, last)
	out := w.aead.Seal(w.cb[:0], w.nonce[:], plaintext, nil)
	w.dirty = max(w.dirty, len(out))
	w.buf = w.cb[:0]
	if _, err := w.dst.Write(out); err != nil {
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
	w.release()
	return w.err
}

// Abort ends the stream without its final chunk (what was written to dst is
// not a valid sealed object), clears the buffered plaintext and drops the
// payload key. It does not close dst. Close after Abort reports the abort;
// Abort after Close does nothing.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	if w.err == nil {
		w.err = errWriterAborted
	}
	w.meta.PlaintextSize = w.size
	w.release()
}

// release clears and returns the chunk buffer and drops the payload cipher.
func (w *Writer) release() {
	putChunkBuf(w.cb, max(w.dirty, len(w.buf)))
	w.cb, w.buf, w.aead = nil, nil, nil
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
