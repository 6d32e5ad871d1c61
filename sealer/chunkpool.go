package sealer

import "sync"

// chunkBufSize fits the largest thing one chunk operation holds at once: a
// header followed by one ciphertext chunk (Open of a one-chunk object reads
// both in one request). Writers and readers use the first cipherChunkSize
// bytes.
const chunkBufSize = headerSize + cipherChunkSize

// chunkBuf is one pooled chunk buffer. A fixed-size array (not a slice)
// keeps every pooled buffer the same size and lets the pool hold a plain
// pointer.
type chunkBuf [chunkBufSize]byte

// chunkPool holds chunk buffers between streams: without it every message
// allocated (and the runtime zeroed) a fresh 64 KiB buffer, which cost more
// than sealing a small message. Invariant: every buffer in the pool is all
// zero, because a buffer may have held plaintext; whoever puts one back
// clears the bytes it used first (putChunkBuf).
var chunkPool = sync.Pool{New: func() any { return new(chunkBuf) }}

// getChunkBuf returns a zeroed buffer that belongs to the caller alone until
// it hands it to putChunkBuf.
func getChunkBuf() *chunkBuf {
	return chunkPool.Get().(*chunkBuf)
}

// putChunkBuf clears the first used bytes of b (everything the caller may
// have written to) and returns b to the pool. The caller must hold no
// reference into b afterwards.
func putChunkBuf(b *chunkBuf, used int) {
	clear(b[:used])
	chunkPool.Put(b)
}
