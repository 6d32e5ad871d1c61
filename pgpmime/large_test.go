package pgpmime

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"testing"
)

const largeSize = 30 << 20

// heapProbe samples the live heap (after a GC) relative to a baseline.
type heapProbe struct {
	base, peak uint64
	next       int
}

const probeEvery = 2 << 20

func newHeapProbe() *heapProbe {
	p := &heapProbe{next: probeEvery}
	p.base = liveHeap()
	return p
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func (p *heapProbe) tick(written int) {
	if written < p.next {
		return
	}
	p.next += probeEvery
	if h := liveHeap(); h > p.base && h-p.base > p.peak {
		p.peak = h - p.base
	}
}

// TestLargeMessageStreamsInBoundedMemory encrypts a message with a 30 MB
// attachment to a file, sampling the live heap as it goes: it must stay
// within a few MiB of where it started (buffering the message would add at
// least 30 MiB; the probe is shown to see that). GnuPG then decrypts the
// file to exactly the bytes that went in.
func TestLargeMessageStreamsInBoundedMemory(t *testing.T) {
	gk := testGPGKey(t)
	rs := recipientsOf(t, gk.pub)
	const bound = 4 << 20

	t.Run("the probe sees buffering", func(t *testing.T) {
		var buf bytes.Buffer
		p := newHeapProbe()
		if _, err := writeLargeMessage(&buf, largeSize, p.tick); err != nil {
			t.Fatal(err)
		}
		if p.peak < largeSize*9/10 {
			t.Fatalf("buffering %d MiB showed as %d KiB: the probe is blind", largeSize>>20, p.peak>>10)
		}
		runtime.KeepAlive(&buf)
	})

	out, err := os.CreateTemp(t.TempDir(), "pgpmime")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := newHeapProbe()
	w, err := NewPGPMIMEWriter(out, OuterHeaders{From: "alice@example.org", To: "gina@example.org"}, rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := writeLargeMessage(w, largeSize, p.tick)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p.tick(p.next)
	t.Logf("encrypting %d MiB: peak live heap growth %d KiB (bound %d KiB)", largeSize>>20, p.peak>>10, bound>>10)
	if p.peak > bound {
		t.Errorf("live heap grew by %d KiB while encrypting, bound %d KiB", p.peak>>10, bound>>10)
	}

	fi, err := out.Stat()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PGP/MIME output: %d bytes", fi.Size())
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := crlfStreamError(out); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(copyArmoredBlock(out, pw)) }()
	got := newHashWriter()
	if err := gk.g.decrypt(pr, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), sum) {
		t.Fatalf("gpg decrypted %d bytes that differ from the %d-MiB original", got.n, largeSize>>20)
	}
}

// crlfStreamError is crlfError over a stream, with a bounded window.
func crlfStreamError(r io.Reader) error {
	buf := make([]byte, 1<<20)
	var prev byte
	lineLen := 0
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case prev == '\r' && c != '\n':
				return errorf("bare CR")
			case c == '\n' && prev != '\r':
				return errorf("bare LF")
			case c == '\n':
				lineLen = 0
			default:
				lineLen++
				if lineLen > 1000 {
					return errorf("line longer than 998 characters")
				}
			}
			prev = c
		}
		if err == io.EOF {
			if prev != '\n' {
				return errorf("output does not end with CRLF")
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type errorf string

func (e errorf) Error() string { return string(e) }
