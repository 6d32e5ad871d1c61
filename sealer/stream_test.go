package sealer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
)

const C = ChunkSize

// writePatterns feed a Writer in different ways; they must all produce a
// stream that opens to the same plaintext.
var writePatterns = []struct {
	name string
	max  int // largest plaintext the pattern is run on (0: any)
	feed func(w io.Writer, p []byte) error
}{
	{"whole", 0, func(w io.Writer, p []byte) error {
		_, err := w.Write(p)
		return err
	}},
	{"byte-at-a-time", 3*C + 7, func(w io.Writer, p []byte) error {
		for i := range p {
			if n, err := w.Write(p[i : i+1]); n != 1 || err != nil {
				return fmt.Errorf("write %d: n=%d err=%v", i, n, err)
			}
		}
		return nil
	}},
	{"odd-sizes", 0, func(w io.Writer, p []byte) error {
		sizes := []int{1, 3, 7, 4093, C - 1, C + 1, 2*C + 5, 0, C}
		for i := 0; len(p) > 0; i++ {
			k := min(sizes[i%len(sizes)], len(p))
			if n, err := w.Write(p[:k]); n != k || err != nil {
				return fmt.Errorf("write of %d: n=%d err=%v", k, n, err)
			}
			p = p[k:]
		}
		return nil
	}},
	{"io.Copy-half-reader", 0, func(w io.Writer, p []byte) error {
		_, err := io.Copy(w, iotest.HalfReader(bytes.NewReader(p)))
		return err
	}},
	{"io.Copy-data-err-reader", 0, func(w io.Writer, p []byte) error {
		_, err := io.Copy(w, iotest.DataErrReader(bytes.NewReader(p)))
		return err
	}},
}

var roundTripSizes = []int{0, 1, C - 1, C, C + 1, 3 * C, 3*C + 7, 5<<20 + 123}

func plaintextOf(n int) []byte {
	p := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, n := range roundTripSizes {
		plaintext := plaintextOf(n)
		for _, pat := range writePatterns {
			if pat.max > 0 && n > pat.max {
				continue
			}
			t.Run(fmt.Sprintf("%d/%s", n, pat.name), func(t *testing.T) {
				dk := testDataKey("round-trip")
				var buf bytes.Buffer
				w, err := NewWriter(&buf, dk, "message")
				if err != nil {
					t.Fatal(err)
				}
				if buf.Len() != headerSize {
					t.Fatalf("after NewWriter: %d bytes written, want the %d-byte header", buf.Len(), headerSize)
				}
				if err := pat.feed(w, plaintext); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				object, meta := buf.Bytes(), w.Metadata()
				if got, want := int64(len(object)), CiphertextSize(int64(n)); got != want {
					t.Fatalf("object is %d bytes, CiphertextSize(%d) = %d", got, n, want)
				}
				if meta.PlaintextSize != int64(n) {
					t.Fatalf("PlaintextSize = %d, want %d", meta.PlaintextSize, n)
				}
				parsed, err := ParseMetadata(meta.Map())
				if err != nil {
					t.Fatal(err)
				}
				got, err := openAll(object, parsed, dk, "message")
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, plaintext) {
					t.Fatal("plaintext differs")
				}
				ref, err := refOpen(dk.Plaintext, meta.Map(), "message", object)
				if err != nil || !bytes.Equal(ref, plaintext) {
					t.Fatalf("the reference decryptor of docs/FORMAT.md disagrees: %v", err)
				}
			})
		}
	}
}

// ranges returns (off, n) pairs around every chunk boundary of a plaintext
// of size bytes, plus random ones.
func ranges(size int64) [][2]int64 {
	points := []int64{0, 1, size / 2, size - 1, size}
	for b := int64(C); b < size && b <= 4*C; b += C {
		points = append(points, b-1, b, b+1)
	}
	points = append(points, size-C-1, size-C, size-C+1)
	var out [][2]int64
	for _, a := range points {
		for _, b := range points {
			if 0 <= a && a <= b && b <= size {
				out = append(out, [2]int64{a, b - a})
			}
		}
	}
	r := rand.New(rand.NewPCG(uint64(size), 2))
	for range 30 {
		a := r.Int64N(size + 1)
		out = append(out, [2]int64{a, r.Int64N(size - a + 1)})
	}
	return append(out, [2]int64{0, -1}, [2]int64{size / 3, -1})
}

// coveringRange is the ciphertext range that a plaintext range needs,
// computed from the layout in docs/FORMAT.md.
func coveringRange(size, off, n int64) (start, length int64) {
	first, last := off/C, (off+n-1)/C
	final := max((size+C-1)/C, 1) - 1
	start = 41 + first*(C+16)
	end := 41 + (last+1)*(C+16)
	if last == final {
		end = CiphertextSize(size)
	}
	return start, end - start
}

func TestRandomAccess(t *testing.T) {
	for _, n := range roundTripSizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plaintext := plaintextOf(n)
			dk := testDataKey("random-access")
			object, meta := seal(t, dk, "message", plaintext)
			src := &memSource{data: object}
			s, err := Open(context.Background(), src.source, int64(len(object)), meta, dk, "message")
			if err != nil {
				t.Fatal(err)
			}
			if s.Size() != int64(n) {
				t.Fatalf("Size = %d, want %d", s.Size(), n)
			}
			// Open reads the header and authenticates the final chunk.
			calls, _ := src.reset()
			final := chunkCount(int64(n)) - 1
			want := []rangeCall{{0, int64(len(object))}}
			if final > 0 {
				want = []rangeCall{{0, 41}, {41 + final*(C+16), int64(len(object)) - 41 - final*(C+16)}}
			}
			if !slices.Equal(calls, want) {
				t.Fatalf("Open asked for %v, want %v", calls, want)
			}

			for _, rg := range ranges(int64(n)) {
				off, length := rg[0], rg[1]
				r, err := s.NewReader(context.Background(), off, length)
				if err != nil {
					t.Fatalf("NewReader(%d, %d): %v", off, length, err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("read [%d, +%d): %v", off, length, err)
				}
				r.Close()
				if length < 0 {
					length = int64(n) - off
				}
				if !bytes.Equal(got, plaintext[off:off+length]) {
					t.Fatalf("read [%d, +%d): wrong bytes", off, length)
				}
				calls, read := src.reset()
				if length == 0 {
					if len(calls) != 0 {
						t.Fatalf("empty range [%d, +0) asked the source %v", off, calls)
					}
					continue
				}
				start, clen := coveringRange(int64(n), off, length)
				if !slices.Equal(calls, []rangeCall{{start, clen}}) {
					t.Fatalf("range [%d, +%d): source asked for %v, want [{%d %d}]", off, length, calls, start, clen)
				}
				if read != clen {
					t.Fatalf("range [%d, +%d): %d ciphertext bytes read, want %d", off, length, read, clen)
				}
			}
		})
	}
}

// TestReaderContract runs iotest.TestReader on readers of a few ranges.
func TestReaderContract(t *testing.T) {
	plaintext := plaintextOf(3*C + 7)
	dk := testDataKey("reader-contract")
	object, meta := seal(t, dk, "message", plaintext)
	src := &memSource{data: object}
	s, err := Open(context.Background(), src.source, int64(len(object)), meta, dk, "message")
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range [][2]int64{{0, -1}, {C - 3, 10}, {5, 2*C + 1}, {3 * C, 7}} {
		t.Run(fmt.Sprint(rg), func(t *testing.T) {
			r, err := s.NewReader(context.Background(), rg[0], rg[1])
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			end := int64(len(plaintext))
			if rg[1] >= 0 {
				end = rg[0] + rg[1]
			}
			if err := iotest.TestReader(r, plaintext[rg[0]:end]); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConcurrentReaders(t *testing.T) {
	plaintext := plaintextOf(4*C + 99)
	dk := testDataKey("concurrent")
	object, meta := seal(t, dk, "message", plaintext)
	src := &memSource{data: object}
	s, err := Open(context.Background(), src.source, int64(len(object)), meta, dk, "message")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			off := int64(g) * C / 2
			r, err := s.NewReader(context.Background(), off, -1)
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, plaintext[off:]) {
				t.Errorf("goroutine %d: err=%v, equal=%v", g, err, bytes.Equal(got, plaintext[off:]))
			}
		})
	}
	wg.Wait()
}

func TestNewReaderBounds(t *testing.T) {
	dk := testDataKey("bounds")
	object, meta := seal(t, dk, "message", plaintextOf(100))
	src := &memSource{data: object}
	s, err := Open(context.Background(), src.source, int64(len(object)), meta, dk, "message")
	if err != nil {
		t.Fatal(err)
	}
	src.reset()
	for _, rg := range [][2]int64{{-1, 1}, {101, -1}, {101, 0}, {0, 101}, {50, 51}, {1 << 62, 1 << 62}} {
		t.Run(fmt.Sprint(rg), func(t *testing.T) {
			if _, err := s.NewReader(context.Background(), rg[0], rg[1]); err == nil {
				t.Fatal("out-of-range read accepted")
			}
		})
	}
	if calls, _ := src.reset(); len(calls) != 0 {
		t.Fatalf("rejected ranges reached the source: %v", calls)
	}
}

func TestCiphertextSize(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{
		{-1, -1},
		{0, 41 + 16},
		{1, 41 + 1 + 16},
		{C - 1, 41 + C - 1 + 16},
		{C, 41 + C + 16},
		{C + 1, 41 + C + 1 + 32},
		{3 * C, 41 + 3*C + 48},
		{3*C + 7, 41 + 3*C + 7 + 64},
		{1 << 40, 41 + 1<<40 + (1<<40/C)*16},
		{1<<40 + 1, -1},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			if got := CiphertextSize(tc.n); got != tc.want {
				t.Fatalf("CiphertextSize(%d) = %d, want %d", tc.n, got, tc.want)
			}
			if tc.want < 0 {
				return
			}
			if n, ok := plaintextSizeOf(tc.want); !ok || n != tc.n {
				t.Fatalf("plaintextSizeOf(%d) = %d, %v; want %d", tc.want, n, ok, tc.n)
			}
		})
	}
	// Sizes no plaintext seals to.
	for _, size := range []int64{0, 40, 41, 56, 41 + C + 17, 41 + C + 32, 1 << 62} {
		if n, ok := plaintextSizeOf(size); ok {
			t.Errorf("plaintextSizeOf(%d) = %d, want none", size, n)
		}
	}
}

type recordingWriter struct {
	bytes.Buffer
	closed bool
	fail   error
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	return w.Buffer.Write(p)
}

func (w *recordingWriter) Close() error { w.closed = true; return nil }

func TestWriterLifecycle(t *testing.T) {
	dk := testDataKey("lifecycle")
	dst := &recordingWriter{}
	w, err := NewWriter(dst, dk, "message")
	if err != nil {
		t.Fatal(err)
	}
	dk.Clear() // the payload key is derived: the data key is no longer needed
	p := plaintextOf(C + 5)
	if _, err := w.Write(p[:C]); err != nil {
		t.Fatal(err)
	}
	if dst.Len() != headerSize {
		t.Fatalf("%d bytes written before a second chunk began, want only the header", dst.Len())
	}
	if _, err := w.Write(p[C:]); err != nil {
		t.Fatal(err)
	}
	if dst.Len() != headerSize+C+16 {
		t.Fatalf("%d bytes written once a second chunk began, want the header and one chunk", dst.Len())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if dst.closed {
		t.Fatal("Close closed dst")
	}
	if w.aead != nil || w.buf != nil {
		t.Fatal("payload key or plaintext buffer still held after Close")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close accepted")
	}
	if got := w.Metadata().PlaintextSize; got != C+5 {
		t.Fatalf("PlaintextSize = %d", got)
	}
	if int64(dst.Len()) != CiphertextSize(C+5) {
		t.Fatalf("object is %d bytes", dst.Len())
	}
}

func TestWriterErrors(t *testing.T) {
	t.Run("header write fails", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := NewWriter(&recordingWriter{fail: boom}, testDataKey("x"), "message"); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("chunk write fails and sticks", func(t *testing.T) {
		boom := errors.New("boom")
		dst := &recordingWriter{}
		w, err := NewWriter(dst, testDataKey("x"), "message")
		if err != nil {
			t.Fatal(err)
		}
		dst.fail = boom
		if _, err := w.Write(plaintextOf(2*C + 1)); !errors.Is(err, boom) {
			t.Fatalf("Write: %v", err)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, boom) {
			t.Fatalf("second Write: %v", err)
		}
		if err := w.Close(); !errors.Is(err, boom) {
			t.Fatalf("Close: %v", err)
		}
	})
	for _, tc := range []struct {
		name    string
		mutate  func(*DataKey)
		purpose string
	}{
		{"short key", func(k *DataKey) { k.Plaintext = k.Plaintext[:31] }, "message"},
		{"no provider", func(k *DataKey) { k.Provider = "" }, "message"},
		{"no key id", func(k *DataKey) { k.KeyID = "" }, "message"},
		{"key id with space", func(k *DataKey) { k.KeyID = "a b" }, "message"},
		{"no wrapped key", func(k *DataKey) { k.Wrapped = nil }, "message"},
		{"wrapped key too long", func(k *DataKey) { k.Wrapped = make([]byte, 1025) }, "message"},
		{"context not UTF-8", func(k *DataKey) { k.Context = map[string]string{"a": "\xff"} }, "message"},
		{"context too large", func(k *DataKey) { k.Context = map[string]string{"a": string(make([]byte, 4096))} }, "message"},
		{"no purpose", func(*DataKey) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dk := testDataKey("x")
			tc.mutate(dk)
			dst := &recordingWriter{}
			if _, err := NewWriter(dst, dk, tc.purpose); err == nil {
				t.Fatal("accepted")
			}
			if dst.Len() != 0 {
				t.Fatal("wrote to dst before failing")
			}
		})
	}
}

// TestNoPlaintextBeforeAuthentication: a reader returns no byte of a chunk
// that does not authenticate.
func TestNoPlaintextBeforeAuthentication(t *testing.T) {
	dk := testDataKey("no-early-release")
	ctx := context.Background()

	t.Run("first of two chunks corrupted", func(t *testing.T) {
		object, meta := seal(t, dk, "message", plaintextOf(C+10))
		object[headerSize+100] ^= 1
		src := &memSource{data: object}
		s, err := Open(ctx, src.source, int64(len(object)), meta, dk, "message")
		if err != nil {
			t.Fatalf("Open (final chunk intact): %v", err)
		}
		for _, readSize := range []int{1, 100, 2 * C} {
			r, err := s.NewReader(ctx, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			n, err := r.Read(make([]byte, readSize))
			if n != 0 || !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Read(%d) = %d, %v; want 0, ErrDecrypt", readSize, n, err)
			}
			r.Close()
		}
	})

	t.Run("last chunk corrupted after Open", func(t *testing.T) {
		plaintext := plaintextOf(3*C + 7)
		object, meta := seal(t, dk, "message", plaintext)
		src := &memSource{data: bytes.Clone(object)}
		s, err := Open(ctx, src.source, int64(len(object)), meta, dk, "message")
		if err != nil {
			t.Fatal(err)
		}
		src.data[len(object)-3] ^= 0x80 // the store changes under us
		r, err := s.NewReader(ctx, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(iotest.OneByteReader(r))
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("err = %v, want ErrDecrypt", err)
		}
		if !bytes.Equal(got, plaintext[:3*C]) {
			t.Fatalf("got %d bytes, want exactly the %d bytes of the authentic chunks", len(got), 3*C)
		}
	})

	t.Run("body cut short mid-chunk", func(t *testing.T) {
		plaintext := plaintextOf(2 * C)
		object, meta := seal(t, dk, "message", plaintext)
		src := &memSource{data: object}
		s, err := Open(ctx, src.source, int64(len(object)), meta, dk, "message")
		if err != nil {
			t.Fatal(err)
		}
		src.data = object[:headerSize+C+16+C/2]
		r, err := s.NewReader(ctx, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if !errors.Is(err, ErrDecrypt) || !bytes.Equal(got, plaintext[:C]) {
			t.Fatalf("got %d bytes, %v; want %d bytes and ErrDecrypt", len(got), err, C)
		}
	})
}

func TestSourceErrors(t *testing.T) {
	dk := testDataKey("source-errors")
	object, meta := seal(t, dk, "message", plaintextOf(2*C))
	boom := errors.New("store unreachable")
	fail := func(context.Context, int64, int64) (io.ReadCloser, error) { return nil, boom }
	if _, err := Open(context.Background(), fail, int64(len(object)), meta, dk, "message"); !errors.Is(err, boom) || errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open: %v, want the source's error", err)
	}
	src := &memSource{data: object}
	s, err := Open(context.Background(), src.source, int64(len(object)), meta, dk, "message")
	if err != nil {
		t.Fatal(err)
	}
	s.src = func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return io.NopCloser(iotest.TimeoutReader(bytes.NewReader(object[off : off+n]))), nil
	}
	r, err := s.NewReader(context.Background(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("read: %v, want the source's error", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r, err = s.NewReader(ctx, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
}
