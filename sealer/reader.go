package sealer

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Unwrap asks kp for the plaintext data key of meta. The caller must Clear it.
func Unwrap(ctx context.Context, kp KeyProvider, meta Metadata) (*DataKey, error) {
	meta.PlaintextSize = 0 // not needed to unwrap; OpenBlob callers may not know it
	if err := meta.validate(); err != nil {
		return nil, err
	}
	if kp == nil {
		return nil, fmt.Errorf("sealer: no key provider")
	}
	if meta.Provider != kp.Name() {
		return nil, fmt.Errorf("sealer: object was sealed by key provider %q, but the provider in use is %q",
			meta.Provider, kp.Name())
	}
	pt, err := kp.Decrypt(ctx, meta.KeyID, meta.WrappedKey, meta.Context)
	if err != nil {
		return nil, fmt.Errorf("sealer: unwrap data key (%s): %w", meta.KeyID, err)
	}
	if len(pt) != dataKeySize {
		clear(pt)
		return nil, fmt.Errorf("sealer: unwrap data key (%s): provider returned %d bytes, want %d",
			meta.KeyID, len(pt), dataKeySize)
	}
	return &DataKey{
		Plaintext: pt,
		Wrapped:   slices.Clone(meta.WrappedKey),
		KeyID:     meta.KeyID,
		Provider:  meta.Provider,
		Context:   maps.Clone(meta.Context),
	}, nil
}

// Sealed is an opened sealed object giving authenticated random access.
//
// A Sealed may be used by several goroutines at once; each reader it returns
// belongs to one.
type Sealed struct {
	src   RangeSource
	aead  cipher.AEAD
	size  int64 // plaintext
	final int64 // index of the final chunk
}

// Open reads and checks the header of the object behind src (whose total
// size is objectSize) against meta, deriving the payload key from dk.
//
// Open also authenticates the final chunk, so a successful Open means that
// the header, every metadata field and the plaintext size are authentic
// before a caller commits to serving Size() bytes. It reads the header and
// the final chunk (one read when the object is a single chunk) and releases
// nothing.
func Open(ctx context.Context, src RangeSource, objectSize int64, meta Metadata, dk *DataKey, purpose string) (*Sealed, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	if err := checkPurpose(purpose); err != nil {
		return nil, err
	}
	if dk == nil || len(dk.Plaintext) != dataKeySize {
		return nil, fmt.Errorf("sealer: data key is not %d bytes", dataKeySize)
	}
	if src == nil {
		return nil, fmt.Errorf("sealer: no range source")
	}
	// The size check is what catches a tampered mv-plaintext-size, trailing
	// data and most truncations before anything is read.
	if objectSize != CiphertextSize(meta.PlaintextSize) {
		return nil, ErrDecrypt
	}
	s := &Sealed{src: src, size: meta.PlaintextSize, final: chunkCount(meta.PlaintextSize) - 1}

	// Header and final chunk share one pooled buffer: the chunk's plaintext
	// is decrypted in place, checked and cleared with the buffer.
	cb := getChunkBuf()
	hdr := cb[:headerSize]
	chunk := cb[headerSize : int64(headerSize)+chunkCipherLen(s.final, s.size)]
	defer putChunkBuf(cb, headerSize+len(chunk))
	if s.final == 0 {
		if err := readRange(ctx, src, 0, cb[:objectSize]); err != nil {
			return nil, err
		}
	} else {
		if err := readRange(ctx, src, 0, hdr); err != nil {
			return nil, err
		}
		if err := readRange(ctx, src, chunkOffset(s.final), chunk); err != nil {
			return nil, err
		}
	}
	if _, ok := parseHeader(hdr); !ok {
		return nil, ErrDecrypt
	}
	aead, err := newPayloadAEAD(dk.Plaintext, hdr, &meta, purpose)
	if err != nil {
		return nil, err
	}
	nonce := chunkNonce(s.final, true)
	if _, err := aead.Open(chunk[:0], nonce[:], chunk, nil); err != nil {
		return nil, ErrDecrypt
	}
	s.aead = aead
	return s, nil
}

// readRange fills buf from the object at off. A body that ends early is a
// truncated object (ErrDecrypt); any other failure is the source's.
func readRange(ctx context.Context, src RangeSource, off int64, buf []byte) error {
	rc, err := src(ctx, off, int64(len(buf)))
	if err != nil {
		return fmt.Errorf("sealer: read %d bytes at %d: %w", len(buf), off, err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, buf); err != nil {
		return sourceErr(err, off)
	}
	return nil
}

func sourceErr(err error, off int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrDecrypt
	}
	return fmt.Errorf("sealer: read at %d: %w", off, err)
}

// Size is the plaintext size.
func (s *Sealed) Size() int64 { return s.size }

// NewReader returns plaintext bytes [off, off+n) (n < 0: to the end), reading
// only the chunks that cover them. No byte is returned before its chunk has
// authenticated; a failure is ErrDecrypt.
//
// It asks src once, for exactly the ciphertext of the covering chunks, and
// decrypts them one at a time: memory is one chunk whatever the range.
func (s *Sealed) NewReader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if off < 0 || off > s.size {
		return nil, fmt.Errorf("sealer: offset %d outside plaintext of %d bytes", off, s.size)
	}
	if n < 0 {
		n = s.size - off
	}
	if n > s.size-off {
		return nil, fmt.Errorf("sealer: range of %d bytes at %d beyond plaintext of %d bytes", n, off, s.size)
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	first, last := off/ChunkSize, (off+n-1)/ChunkSize
	start := chunkOffset(first)
	end := chunkOffset(last) + chunkCipherLen(last, s.size)
	body, err := s.src(ctx, start, end-start)
	if err != nil {
		return nil, fmt.Errorf("sealer: read %d bytes at %d: %w", end-start, start, err)
	}
	return &chunkReader{
		s:      s,
		ctx:    ctx,
		body:   body,
		next:   first,
		skip:   int(off - first*ChunkSize),
		remain: n,
		cb:     getChunkBuf(),
	}, nil
}

// chunkReader streams the plaintext of a run of chunks.
type chunkReader struct {
	s      *Sealed
	ctx    context.Context
	body   io.ReadCloser
	next   int64           // next chunk to read
	skip   int             // plaintext bytes to drop from the start of the next chunk
	remain int64           // range bytes not yet moved into out
	cb     *chunkBuf       // pooled; one ciphertext chunk, decrypted in place; nil once closed
	dirty  int             // bytes of cb ever written: what Close must clear
	out    []byte          // authenticated plaintext not yet returned
	nonce  [nonceSize]byte // here, not on the stack: passed to the AEAD it would escape per chunk
	err    error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.remain == 0 {
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// fill reads, authenticates and decrypts the next chunk into out.
func (r *chunkReader) fill() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	i := r.next
	ct := r.cb[:chunkCipherLen(i, r.s.size)]
	r.dirty = max(r.dirty, len(ct))
	if _, err := io.ReadFull(r.body, ct); err != nil {
		return sourceErr(err, chunkOffset(i))
	}
	r.nonce = chunkNonce(i, i == r.s.final)
	pt, err := r.s.aead.Open(ct[:0], r.nonce[:], ct, nil)
	if err != nil {
		return ErrDecrypt
	}
	r.next++
	pt = pt[r.skip:]
	r.skip = 0
	if int64(len(pt)) > r.remain {
		pt = pt[:r.remain]
	}
	r.remain -= int64(len(pt))
	r.out = pt
	return nil
}

// Close releases the source and clears and returns the plaintext buffer.
func (r *chunkReader) Close() error {
	if r.cb == nil {
		return nil
	}
	putChunkBuf(r.cb, r.dirty)
	r.cb, r.out = nil, nil
	if r.err == nil {
		r.err = errors.New("sealer: read from a closed reader")
	}
	return r.body.Close()
}
