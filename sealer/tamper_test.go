package sealer

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// mustFail asserts that opening and reading object fails with ErrDecrypt.
func mustFail(t *testing.T, object []byte, meta Metadata, dk *DataKey, purpose string) {
	t.Helper()
	got, err := openAll(object, meta, dk, purpose)
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v (got %d bytes), want ErrDecrypt", err, len(got))
	}
	if err.Error() != ErrDecrypt.Error() {
		t.Fatalf("error %q says more than ErrDecrypt", err)
	}
	if _, err := refOpen(dk.Plaintext, meta.Map(), purpose, object); err == nil {
		t.Fatal("the reference decryptor accepts what Open rejects")
	}
}

func TestTamperHeader(t *testing.T) {
	for _, n := range []int{0, 10, 2*C + 3} {
		dk := testDataKey("tamper-header")
		object, meta := seal(t, dk, "message", plaintextOf(n))
		for i := range headerSize {
			for _, bit := range []byte{0x01, 0x80} {
				t.Run(fmt.Sprintf("%d/byte%d^%#x", n, i, bit), func(t *testing.T) {
					bad := bytes.Clone(object)
					bad[i] ^= bit
					mustFail(t, bad, meta, dk, "message")
				})
			}
		}
	}
}

func TestTamperChunks(t *testing.T) {
	dk := testDataKey("tamper-chunks")
	n := int64(3*C + 7)
	object, meta := seal(t, dk, "message", plaintextOf(int(n)))
	for i := range chunkCount(n) {
		start := chunkOffset(i)
		clen := chunkCipherLen(i, n)
		// First byte, middle, last plaintext byte, first and last tag byte.
		for _, at := range []int64{0, clen / 2, clen - 17, clen - 16, clen - 1} {
			t.Run(fmt.Sprintf("chunk%d/+%d", i, at), func(t *testing.T) {
				bad := bytes.Clone(object)
				bad[start+at] ^= 0x40
				mustFail(t, bad, meta, dk, "message")
			})
		}
	}
}

func TestTamperStructure(t *testing.T) {
	dk := testDataKey("tamper-structure")
	n := int64(3*C + 7)
	plaintext := plaintextOf(int(n))
	object, meta := seal(t, dk, "message", plaintext)
	chunk := func(i int64) []byte { return object[chunkOffset(i) : chunkOffset(i)+chunkCipherLen(i, n)] }
	withSize := func(size int64) Metadata { m := meta; m.PlaintextSize = size; return m }

	type tc struct {
		name   string
		object []byte
		meta   Metadata
	}
	var cases []tc
	// Truncation at every chunk boundary and inside every chunk, with the
	// size left alone and with the size "fixed up" to match where possible.
	for i := range chunkCount(n) {
		for _, cut := range []int64{chunkOffset(i), chunkOffset(i) + 1, chunkOffset(i) + C/2, chunkOffset(i) + chunkCipherLen(i, n) - 1} {
			cases = append(cases, tc{fmt.Sprintf("truncate at %d", cut), object[:cut], meta})
			if size, ok := plaintextSizeOf(cut); ok {
				cases = append(cases, tc{fmt.Sprintf("truncate at %d, size %d", cut, size), object[:cut], withSize(size)})
			}
		}
	}
	dropFinal := object[:chunkOffset(3)]
	cases = append(cases,
		tc{"drop final chunk", dropFinal, meta},
		tc{"drop final chunk, size fixed up", dropFinal, withSize(3 * C)},
		tc{"drop first chunk, size fixed up", slices.Concat(object[:headerSize], object[chunkOffset(1):]), withSize(n - C)},
		tc{"swap chunks 0 and 1", slices.Concat(object[:headerSize], chunk(1), chunk(0), chunk(2), chunk(3)), meta},
		tc{"swap chunks 1 and 2", slices.Concat(object[:headerSize], chunk(0), chunk(2), chunk(1), chunk(3)), meta},
		tc{"duplicate chunk 0", slices.Concat(object[:headerSize], chunk(0), chunk(0), chunk(2), chunk(3)), meta},
		tc{"trailing byte", slices.Concat(object, []byte{0}), meta},
		tc{"trailing byte, size fixed up", slices.Concat(object, []byte{0}), withSize(n + 1)},
		tc{"trailing chunk", slices.Concat(object, chunk(1)), meta},
		tc{"trailing chunk, size fixed up", slices.Concat(object, chunk(1)), withSize(n + C)},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mustFail(t, c.object, c.meta, dk, "message") })
	}

	// A two-chunk stream whose first chunk is full: claiming it is a
	// one-chunk stream must fail although the bytes are a prefix.
	two, twoMeta := seal(t, dk, "message", plaintextOf(C+1))
	m := twoMeta
	m.PlaintextSize = C
	t.Run("first full chunk as final", func(t *testing.T) { mustFail(t, two[:chunkOffset(1)], m, dk, "message") })
}

func TestTamperMetadata(t *testing.T) {
	dk := testDataKey("tamper-metadata")
	object, meta := seal(t, dk, "message", plaintextOf(2*C+9))
	if _, err := openAll(object, meta, dk, "message"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(m *Metadata)
	}{
		{"provider", func(m *Metadata) { m.Provider = "local" }},
		{"key id", func(m *Metadata) { m.KeyID = "test:2" }},
		{"wrapped key byte", func(m *Metadata) { m.WrappedKey[0] ^= 1 }},
		{"wrapped key longer", func(m *Metadata) { m.WrappedKey = append(m.WrappedKey, 0) }},
		{"context value", func(m *Metadata) { m.Context[ContextArchiveID] = "other" }},
		{"context extra entry", func(m *Metadata) { m.Context["x"] = "" }},
		{"context empty", func(m *Metadata) { m.Context = nil }},
		{"size +1", func(m *Metadata) { m.PlaintextSize++ }},
		{"size -1", func(m *Metadata) { m.PlaintextSize-- }},
		{"size +chunk", func(m *Metadata) { m.PlaintextSize += C }},
		{"size -chunk", func(m *Metadata) { m.PlaintextSize -= C }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := meta
			m.WrappedKey = bytes.Clone(meta.WrappedKey)
			m.Context = maps.Clone(meta.Context)
			tc.mutate(&m)
			// Through the stored form, as retrieval sees it.
			parsed, err := ParseMetadata(m.Map())
			if err != nil {
				t.Fatal(err)
			}
			mustFail(t, object, parsed, dk, "message")
		})
	}
	t.Run("version", func(t *testing.T) {
		kv := meta.Map()
		kv["mv-version"] = "2"
		if _, err := ParseMetadata(kv); err == nil {
			t.Fatal("version 2 parsed")
		}
		m := meta
		m.Version = 2
		if _, err := openAll(object, m, dk, "message"); err == nil {
			t.Fatal("version 2 opened")
		}
	})
	t.Run("purpose", func(t *testing.T) { mustFail(t, object, meta, dk, "manifest") })
	t.Run("data key", func(t *testing.T) { mustFail(t, object, meta, testDataKey("another"), "message") })
}
