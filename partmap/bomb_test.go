package partmap

import (
	"bytes"
	"encoding/base64"
	"io"
	"iter"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The bombs are generated piece by piece, so the test itself holds none of
// them; their pieces reuse one buffer.

func nestedMultiparts(n int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		buf := make([]byte, 0, 128)
		if !yield([]byte("From: bomb@example.org\r\nSubject: nested\r\nMIME-Version: 1.0\r\n")) {
			return
		}
		for i := range n {
			buf = append(buf[:0], "Content-Type: multipart/mixed; boundary=\"b"...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, "\"\r\n\r\npreamble\r\n--b"...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, "\r\n"...)
			if !yield(buf) {
				return
			}
		}
		if !yield([]byte("Content-Type: text/plain\r\n\r\nleaf\r\n")) {
			return
		}
		for i := n - 1; i >= 0; i-- {
			buf = append(buf[:0], "--b"...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, "--\r\n"...)
			if !yield(buf) {
				return
			}
		}
	}
}

func manyParts(n int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if !yield([]byte("From: bomb@example.org\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n")) {
			return
		}
		part := []byte("--p\r\nContent-Type: text/plain\r\n\r\npart\r\n")
		for range n {
			if !yield(part) {
				return
			}
		}
		yield([]byte("--p--\r\n"))
	}
}

// bigHeader is a header of about size bytes in lines of lineLen (0: one
// line), then a short body.
func bigHeader(size, lineLen int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if !yield([]byte("From: bomb@example.org\r\nSubject: big\r\n")) {
			return
		}
		if lineLen == 0 {
			if !yield([]byte("X-Filler: ")) {
				return
			}
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			for n := 0; n < size; n += len(chunk) {
				if !yield(chunk) {
					return
				}
			}
			yield([]byte("\r\n\r\nbody\r\n"))
			return
		}
		line := []byte("X-Filler: " + strings.Repeat("a", lineLen-12) + "\r\n")
		for n := 0; n < size; n += len(line) {
			if !yield(line) {
				return
			}
		}
		yield([]byte("\r\nbody\r\n"))
	}
}

// bigAttachment is a multipart/mixed message with a text part and an
// attachment of size pseudo-random bytes, in base64 lines of lineLen (0:
// one line), or raw if lineLen < 0.
func bigAttachment(size, lineLen int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		te := "base64"
		if lineLen < 0 {
			te = "binary"
		}
		if !yield([]byte("From: bomb@example.org\r\nSubject: attachment\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=att\r\n\r\n--att\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n" +
			"--att\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: " + te + "\r\n" +
			"Content-Disposition: attachment; filename=big.bin\r\n\r\n")) {
			return
		}
		const block = 57 * 1024 // whole base64 groups, many lines
		raw := make([]byte, block)
		enc := make([]byte, 0, base64.StdEncoding.EncodedLen(block)*2+block/16)
		x := uint64(0x9e3779b97f4a7c15)
		for done := 0; done < size; {
			n := min(block, size-done)
			for i := range raw[:n] {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				raw[i] = byte(x)
			}
			done += n
			if lineLen < 0 {
				if !yield(raw[:n]) {
					return
				}
				continue
			}
			b64 := base64.StdEncoding.AppendEncode(enc[:0], raw[:n])
			if lineLen == 0 {
				if !yield(b64) {
					return
				}
				continue
			}
			out := b64[len(b64):len(b64)]
			for len(b64) > 0 {
				k := min(lineLen, len(b64))
				out = append(out, b64[:k]...)
				out = append(out, '\r', '\n')
				b64 = b64[k:]
			}
			if !yield(out) {
				return
			}
		}
		yield([]byte("\r\n--att--\r\n"))
	}
}

// scanMeasured scans seq in 32 KiB writes, sampling the heap after every
// MiB, and returns the map, the peak growth of HeapInuse and the bytes
// allocated.
func scanMeasured(t *testing.T, seq iter.Seq[[]byte], l Limits) (pm *PartMap, peak, total uint64) {
	t.Helper()
	buf := make([]byte, 32<<10)
	var before, m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	top := before.HeapInuse
	sample := func() {
		runtime.ReadMemStats(&m)
		top = max(top, m.HeapInuse)
	}
	r := newPieceReader(seq, sample)
	s := NewScanner(l)
	if _, err := io.CopyBuffer(s, r, buf); err != nil {
		t.Fatal(err)
	}
	pm = s.Close()
	sample()
	runtime.KeepAlive(buf)
	return pm, top - min(top, before.HeapInuse), m.TotalAlloc - before.TotalAlloc
}

// TestBombs: each hostile message completes, gives a bounded PartMap, and
// the heap does not grow with the message. The bounds are loose (a few
// MiB) but far below the sizes, so a scanner that held the message, a
// header or a part would fail them.
func TestBombs(t *testing.T) {
	const (
		maxPeak  = 8 << 20
		maxAlloc = 16 << 20
	)
	tests := []struct {
		name  string
		seq   iter.Seq[[]byte]
		check func(t *testing.T, pm *PartMap)
	}{
		{"10000 nested multiparts", nestedMultiparts(10000), func(t *testing.T, pm *PartMap) {
			if len(pm.Parts) != 1 || pm.Broken != "nesting depth over 32" || pm.Parts[0].ContentType != octetStream ||
				strings.Count(pm.Parts[0].Path, ".") != 31 {
				t.Errorf("Broken %q, parts %s", pm.Broken, partSummary(pm))
			}
		}},
		{"100000 parts", manyParts(100000), func(t *testing.T, pm *PartMap) {
			last := pm.Parts[len(pm.Parts)-1]
			if len(pm.Parts) != 1000 || pm.Broken != "more than 1000 parts" || last.ContentType != octetStream ||
				last.Offset+last.Length != pm.Size || last.Path != "1000" {
				t.Errorf("Broken %q, %d parts, last %+v", pm.Broken, len(pm.Parts), last)
			}
		}},
		{"10 MB header", bigHeader(10<<20, 1000), func(t *testing.T, pm *PartMap) {
			if len(pm.Parts) != 1 || pm.Broken != "header over 65536 bytes" || pm.Parts[0].Offset != 0 ||
				pm.Parts[0].Length != pm.Size || pm.Header.Subject != "big" {
				t.Errorf("map %+v", pm)
			}
		}},
		{"10 MB header line", bigHeader(10<<20, 0), func(t *testing.T, pm *PartMap) {
			if len(pm.Parts) != 1 || pm.Broken != "header over 65536 bytes" || pm.Parts[0].Length != pm.Size {
				t.Errorf("map %+v", pm)
			}
		}},
		{"30 MB attachment", bigAttachment(30<<20, 76), func(t *testing.T, pm *PartMap) {
			if len(pm.Parts) != 2 || pm.Broken != "" || pm.Parts[1].DecodedSize != 30<<20 || pm.Parts[1].Filename != "big.bin" {
				t.Errorf("map %+v", pm)
			}
		}},
		{"16 MB base64 line", bigAttachment(12<<20, 0), func(t *testing.T, pm *PartMap) {
			if len(pm.Parts) != 2 || pm.Broken != "" || pm.Parts[1].DecodedSize != 12<<20 {
				t.Errorf("map %+v", pm)
			}
		}},
		{"30 MB binary", bigAttachment(30<<20, -1), func(t *testing.T, pm *PartMap) {
			if len(pm.Parts) != 2 || pm.Parts[1].DecodedSize != pm.Parts[1].Length {
				t.Errorf("map %+v", pm)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, peak, total := scanMeasured(t, tt.seq, Limits{})
			t.Logf("%d bytes: %d parts, heap peak +%d KiB, allocated %d KiB", pm.Size, len(pm.Parts), peak>>10, total>>10)
			var end int64
			for _, p := range pm.Parts {
				if p.Offset < end || p.Offset+p.Length > pm.Size {
					t.Fatalf("bad range %+v", p)
				}
				end = p.Offset + p.Length
			}
			tt.check(t, pm)
			if peak > maxPeak {
				t.Errorf("heap grew by %d KiB while scanning, over %d KiB", peak>>10, maxPeak>>10)
			}
			if total > maxAlloc {
				t.Errorf("scanning allocated %d KiB, over %d KiB", total>>10, maxAlloc>>10)
			}
		})
	}
}

// TestBombsInvariants runs the smaller bombs through the full checks,
// which need the bytes in memory.
func TestBombsInvariants(t *testing.T) {
	for name, seq := range map[string]iter.Seq[[]byte]{
		"nested":     nestedMultiparts(200),
		"parts":      manyParts(1500),
		"header":     bigHeader(200<<10, 100),
		"attachment": bigAttachment(1<<20, 76),
	} {
		t.Run(name, func(t *testing.T) {
			raw := collect(seq)
			pm := scanOnce(raw, Limits{})
			checkInvariants(t, raw, pm, Limits{})
			checkDecodedSizes(t, raw, pm)
			if got := scanRandom(raw, Limits{}, 1); !equalMaps(got, pm) {
				t.Errorf("random writes give another map")
			}
		})
	}
}

func equalMaps(a, b *PartMap) bool {
	if a.Header != b.Header || a.Size != b.Size || a.Broken != b.Broken || len(a.Parts) != len(b.Parts) {
		return false
	}
	for i := range a.Parts {
		if a.Parts[i] != b.Parts[i] {
			return false
		}
	}
	return true
}
