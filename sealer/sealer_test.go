package sealer

// Fixtures shared by the tests, and refOpen: an independent decryptor written
// from docs/FORMAT.md alone, which the tests hold the package to.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files and fuzz seeds under testdata")

// testDataKey is a data key as a provider named "test" would hand it out.
func testDataKey(id string) *DataKey {
	sum := sha256.Sum256([]byte("data key " + id))
	return &DataKey{
		Plaintext: sum[:],
		Wrapped:   []byte("wrapped data key of " + id),
		KeyID:     "test:1",
		Provider:  "test",
		Context:   ArchiveContext(id),
	}
}

// seal seals plaintext with one Write call.
func seal(t testing.TB, dk *DataKey, purpose string, plaintext []byte) ([]byte, Metadata) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, dk, purpose)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.Metadata()
}

type rangeCall struct{ off, n int64 }

// memSource serves an in-memory object and records what was asked of it and
// how many bytes were actually read.
type memSource struct {
	mu    sync.Mutex
	data  []byte
	calls []rangeCall
	read  int64
}

func (m *memSource) source(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, rangeCall{off, n})
	if off < 0 || off > int64(len(m.data)) {
		return nil, fmt.Errorf("memSource: offset %d out of range", off)
	}
	end := int64(len(m.data))
	if n >= 0 && off+n < end {
		end = off + n
	}
	return &countingBody{r: bytes.NewReader(m.data[off:end]), m: m}, nil
}

func (m *memSource) reset() (calls []rangeCall, read int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	calls, read = m.calls, m.read
	m.calls, m.read = nil, 0
	return calls, read
}

type countingBody struct {
	r *bytes.Reader
	m *memSource
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.m.mu.Lock()
	b.m.read += int64(n)
	b.m.mu.Unlock()
	return n, err
}

func (b *countingBody) Close() error { return nil }

// openAll opens object and reads all of it.
func openAll(object []byte, meta Metadata, dk *DataKey, purpose string) ([]byte, error) {
	src := &memSource{data: object}
	s, err := Open(context.Background(), src.source, int64(len(object)), meta, dk, purpose)
	if err != nil {
		return nil, err
	}
	r, err := s.NewReader(context.Background(), 0, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// refChunks decrypts every chunk of object on its own, following
// docs/FORMAT.md and nothing else in this package. chunks[i] is nil when
// chunk i does not authenticate; err is set when the object cannot be
// decrypted at all (bad metadata, size or header).
func refChunks(dataKey []byte, md map[string]string, purpose string, object []byte) (chunks [][]byte, err error) {
	const (
		hdrLen = 41
		chunk  = 65536
		tag    = 16
	)
	if md["mv-version"] != "1" {
		return nil, errors.New("ref: version")
	}
	wrapped, err := base64.StdEncoding.DecodeString(md["mv-wrapped-key"])
	if err != nil {
		return nil, errors.New("ref: wrapped key")
	}
	var encCtx map[string]string
	if err := json.Unmarshal([]byte(md["mv-context"]), &encCtx); err != nil {
		return nil, errors.New("ref: context")
	}
	size, err := strconv.ParseInt(md["mv-plaintext-size"], 10, 64)
	if err != nil || size < 0 || size > 1<<40 {
		return nil, errors.New("ref: size")
	}
	nChunks := (size + chunk - 1) / chunk
	if size == 0 {
		nChunks = 1
	}
	if int64(len(object)) != hdrLen+size+nChunks*tag {
		return nil, errors.New("ref: object size")
	}
	hdr := object[:hdrLen]
	if string(hdr[:4]) != "MVLT" || hdr[4] != 1 || binary.BigEndian.Uint32(hdr[5:9]) != chunk {
		return nil, errors.New("ref: header")
	}

	lp := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	var info []byte
	info = lp(info, "mailvaultd/sealer/v1 payload key")
	info = lp(info, purpose)
	info = lp(info, string(hdr))
	info = binary.BigEndian.AppendUint32(info, 1)
	info = lp(info, md["mv-provider"])
	info = lp(info, md["mv-key-id"])
	info = lp(info, string(wrapped))
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	info = binary.BigEndian.AppendUint32(info, uint32(len(keys)))
	for _, k := range keys {
		info = lp(lp(info, k), encCtx[k])
	}
	key, err := hkdf.Key(sha256.New, dataKey, hdr[9:41], string(info), 32)
	if err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)

	payload := object[hdrLen:]
	for i := int64(0); i < nChunks; i++ {
		end := min((i+1)*(chunk+tag), int64(len(payload)))
		var nonce [12]byte
		binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
		if i == nChunks-1 {
			nonce[11] = 1
		}
		pt, err := aead.Open(nil, nonce[:], payload[i*(chunk+tag):end], nil)
		if err != nil {
			pt = nil
		} else if pt == nil {
			pt = []byte{}
		}
		chunks = append(chunks, pt)
	}
	return chunks, nil
}

// refOpen is refChunks for a whole object: every chunk must authenticate.
func refOpen(dataKey []byte, md map[string]string, purpose string, object []byte) ([]byte, error) {
	chunks, err := refChunks(dataKey, md, purpose, object)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i, c := range chunks {
		if c == nil {
			return nil, fmt.Errorf("ref: chunk %d does not authenticate", i)
		}
		out = append(out, c...)
	}
	return out, nil
}
