package partmap

import (
	"bytes"
	"io"
	"iter"
	"math/rand/v2"
	"strings"
	"testing"
)

// scanWrites scans raw in writes of the sizes next gives (called until raw
// is used up).
func scanWrites(raw []byte, l Limits, next func() int) *PartMap {
	s := NewScanner(l)
	for len(raw) > 0 {
		n := min(max(next(), 1), len(raw))
		if m, err := s.Write(raw[:n]); m != n || err != nil {
			panic("Scanner.Write must take everything")
		}
		raw = raw[n:]
	}
	return s.Close()
}

func scanOnce(raw []byte, l Limits) *PartMap {
	return scanWrites(raw, l, func() int { return len(raw) })
}

func scanBytewise(raw []byte, l Limits) *PartMap {
	return scanWrites(raw, l, func() int { return 1 })
}

func scanRandom(raw []byte, l Limits, seed uint64) *PartMap {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return scanWrites(raw, l, func() int {
		if r.IntN(8) == 0 {
			return 1 + r.IntN(4096)
		}
		return 1 + r.IntN(7)
	})
}

// checkInvariants checks what every PartMap must satisfy, whatever the
// input: the parts' ranges lie in [0, Size], in order, without overlap, and
// the records stay within the limits.
func checkInvariants(t testing.TB, raw []byte, pm *PartMap, l Limits) {
	t.Helper()
	l = l.withDefaults()
	if pm.Size != int64(len(raw)) {
		t.Errorf("Size = %d, want %d", pm.Size, len(raw))
	}
	if len(pm.Parts) == 0 {
		t.Errorf("no parts")
	}
	if len(pm.Parts) > l.MaxParts {
		t.Errorf("%d parts, over MaxParts %d", len(pm.Parts), l.MaxParts)
	}
	var end int64
	for i, p := range pm.Parts {
		if p.Index != i {
			t.Errorf("part %d: Index %d", i, p.Index)
		}
		if p.Path == "" || strings.Count(p.Path, ".") > l.MaxDepth {
			t.Errorf("part %d: Path %q", i, p.Path)
		}
		if p.ContentType == "" {
			t.Errorf("part %d: no ContentType", i)
		}
		if p.Offset < end || p.Length < 0 || p.Offset+p.Length > pm.Size {
			t.Errorf("part %d: range [%d,+%d) after %d in %d bytes", i, p.Offset, p.Length, end, pm.Size)
		}
		end = p.Offset + p.Length
		if p.DecodedSize < 0 {
			t.Errorf("part %d: DecodedSize %d", i, p.DecodedSize)
		}
	}
}

// checkDecodedSizes checks that Decode of each part's range gives exactly
// DecodedSize bytes, and fails only where the map says base64 is bad.
func checkDecodedSizes(t testing.TB, raw []byte, pm *PartMap) {
	t.Helper()
	for i, p := range pm.Parts {
		if p.Offset < 0 || p.Length < 0 || p.Offset+p.Length > int64(len(raw)) {
			continue // reported by checkInvariants
		}
		n, err := io.Copy(io.Discard, Decode(bytes.NewReader(raw[p.Offset:p.Offset+p.Length]), p.TransferEncoding))
		if n != p.DecodedSize {
			t.Errorf("part %d (%s): Decode gives %d bytes, DecodedSize %d", i, p.Path, n, p.DecodedSize)
		}
		if err != nil && (decoderKind(p.TransferEncoding) != base64Kind || pm.Broken == "") {
			t.Errorf("part %d (%s): Decode: %v, but Broken = %q", i, p.Path, err, pm.Broken)
		}
	}
}

// pieceReader reads the pieces a sequence yields, one after another. The
// sequence may reuse its buffer between pieces, so a message of any size
// is made without being held. every, if set, is called after each MiB.
type pieceReader struct {
	next  func() ([]byte, bool)
	stop  func()
	cur   []byte
	done  bool
	n     int64
	every func()
}

func newPieceReader(seq iter.Seq[[]byte], every func()) *pieceReader {
	next, stop := iter.Pull(seq)
	return &pieceReader{next: next, stop: stop, every: every}
}

func (r *pieceReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.cur) == 0 {
			if r.done {
				break
			}
			b, ok := r.next()
			if !ok {
				r.done = true
				r.stop()
				break
			}
			r.cur = b
			continue
		}
		m := copy(p[n:], r.cur)
		r.cur = r.cur[m:]
		n += m
	}
	if r.every != nil && (r.n+int64(n))>>20 != r.n>>20 {
		r.every()
	}
	r.n += int64(n)
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}

// collect reads a sequence into memory, for the tests that need the raw
// bytes afterwards.
func collect(seq iter.Seq[[]byte]) []byte {
	var b bytes.Buffer
	for p := range seq {
		b.Write(p)
	}
	return b.Bytes()
}
