package sealer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
)

// firstNonZero reports the index of the first non-zero byte of b, or -1.
func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// TestWriterClearsPooledBuffer: whatever way a Writer ends, the chunk buffer
// it gives back to the pool holds no byte of plaintext (nor anything else),
// so the next Writer to get it cannot see the last one's message.
func TestWriterClearsPooledBuffer(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name   string
		writes []int // sizes of successive Writes
		fail   bool  // dst fails from the first chunk on
		end    func(*Writer) error
	}{
		{"abort mid first chunk", []int{1000}, false, func(w *Writer) error { w.Abort(); return nil }},
		{"abort with a full chunk buffered", []int{C}, false, func(w *Writer) error { w.Abort(); return nil }},
		{"abort mid second chunk", []int{C, 77}, false, func(w *Writer) error { w.Abort(); return nil }},
		{"abort after a chunk sealed from p", []int{2*C + 5}, false, func(w *Writer) error { w.Abort(); return nil }},
		{"close one chunk", []int{C}, false, (*Writer).Close},
		{"close several chunks", []int{C, C, 3}, false, (*Writer).Close},
		{"close empty", nil, false, (*Writer).Close},
		{"close after dst failed", []int{C, 9}, true, (*Writer).Close},
		{"abort after dst failed", []int{C, 9}, true, func(w *Writer) error { w.Abort(); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := &recordingWriter{}
			w, err := NewWriter(dst, testDataKey("pool"), "message")
			if err != nil {
				t.Fatal(err)
			}
			if tc.fail {
				dst.fail = boom
			}
			cb := w.cb
			if i := firstNonZero(cb[:]); i >= 0 {
				t.Fatalf("new Writer got a buffer with byte %d set", i)
			}
			for _, n := range tc.writes {
				// 0xA5 nowhere zero: any plaintext left behind shows.
				w.Write(bytes.Repeat([]byte{0xA5}, n))
			}
			if len(tc.writes) > 0 && firstNonZero(cb[:]) < 0 {
				t.Fatal("buffer never used: the test checks nothing")
			}
			tc.end(w)
			if w.cb != nil || w.buf != nil {
				t.Fatal("Writer still holds its buffer after ending")
			}
			if i := firstNonZero(cb[:]); i >= 0 {
				t.Fatalf("byte %d of the released buffer is %#x, want every byte cleared", i, cb[i])
			}
		})
	}
}

// TestAbort: an aborted Writer writes no final chunk, refuses further
// writes and reports the abort from Close.
func TestAbort(t *testing.T) {
	dst := &recordingWriter{}
	w, err := NewWriter(dst, testDataKey("abort"), "message")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plaintextOf(C + 1))
	n := dst.Len()
	w.Abort()
	w.Abort()
	if dst.Len() != n {
		t.Fatalf("Abort wrote %d bytes", dst.Len()-n)
	}
	if w.aead != nil {
		t.Fatal("payload cipher still held after Abort")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort accepted")
	}
	if err := w.Close(); !errors.Is(err, errWriterAborted) {
		t.Fatalf("Close after Abort: %v", err)
	}
}

// TestReaderClearsPooledBuffer: a chunk reader and Open give back their
// pooled buffer cleared, whether the reader was drained or closed midway.
func TestReaderClearsPooledBuffer(t *testing.T) {
	dk := testDataKey("pool-read")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		size    int
		readN   int64 // bytes to read before Close
		offset  int64
		rangeOf int64
	}{
		{"one chunk drained", 5000, 5000, 0, -1},
		{"one chunk closed midway", 5000, 10, 0, -1},
		{"three chunks closed mid second", 3*C - 4, C + 10, 0, -1},
		{"range in the last chunk", 3*C - 4, 100, 2*C + 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plaintext := bytes.Repeat([]byte{0x5A}, tc.size)
			object, meta := seal(t, dk, "message", plaintext)
			src := &memSource{data: object}
			s, err := Open(ctx, src.source, int64(len(object)), meta, dk, "message")
			if err != nil {
				t.Fatal(err)
			}
			rc, err := s.NewReader(ctx, tc.offset, tc.rangeOf)
			if err != nil {
				t.Fatal(err)
			}
			r := rc.(*chunkReader)
			cb := r.cb
			got, err := io.ReadAll(io.LimitReader(r, tc.readN))
			if err != nil || int64(len(got)) != tc.readN || !bytes.Equal(got, plaintext[tc.offset:tc.offset+tc.readN]) {
				t.Fatalf("read %d bytes, err %v", len(got), err)
			}
			if bytes.IndexByte(cb[:], 0x5A) < 0 {
				t.Fatal("no plaintext in the buffer before Close: the test checks nothing")
			}
			r.Close()
			if i := firstNonZero(cb[:]); i >= 0 {
				t.Fatalf("byte %d of the released buffer is %#x, want every byte cleared", i, cb[i])
			}
		})
	}
}

// TestConcurrentWritersOwnTheirBuffers: writers open at the same time never
// share a chunk buffer, and each seals exactly its own plaintext (run with
// -race: a shared buffer is also a data race).
func TestConcurrentWritersOwnTheirBuffers(t *testing.T) {
	const writers = 16
	dk := testDataKey("concurrent")
	var (
		created sync.WaitGroup
		done    sync.WaitGroup
		start   = make(chan struct{})
		bufs    = make([]*chunkBuf, writers)
		objects = make([][]byte, writers)
		metas   = make([]Metadata, writers)
		errs    = make([]error, writers)
	)
	plaintexts := make([][]byte, writers)
	for i := range plaintexts {
		plaintexts[i] = bytes.Repeat([]byte{byte(i + 1)}, 2*C+100*i)
	}
	created.Add(writers)
	done.Add(writers)
	for i := range writers {
		go func() {
			defer done.Done()
			var dst bytes.Buffer
			w, err := NewWriter(&dst, dk, "message")
			if err != nil {
				errs[i] = err
				created.Done()
				return
			}
			bufs[i] = w.cb
			created.Done()
			<-start // every writer holds its buffer before any writes or closes
			for p := plaintexts[i]; len(p) > 0; {
				k := min(len(p), 1000+i*37)
				if _, err := w.Write(p[:k]); err != nil {
					errs[i] = err
					return
				}
				p = p[k:]
			}
			errs[i] = w.Close()
			objects[i], metas[i] = dst.Bytes(), w.Metadata()
		}()
	}
	created.Wait()
	seen := map[*chunkBuf]int{}
	for i, b := range bufs {
		if b == nil {
			continue // its error is reported below
		}
		if j, ok := seen[b]; ok {
			t.Errorf("writers %d and %d share a chunk buffer", j, i)
		}
		seen[b] = i
	}
	close(start)
	done.Wait()
	for i := range writers {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		got, err := openAll(objects[i], metas[i], dk, "message")
		if err != nil {
			t.Fatalf("writer %d: open: %v", i, err)
		}
		if !bytes.Equal(got, plaintexts[i]) {
			t.Fatalf("writer %d: sealed plaintext differs", i)
		}
	}
}
