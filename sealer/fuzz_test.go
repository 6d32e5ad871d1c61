package sealer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Seeds live in testdata/fuzz/<target>/; go test -run TestFuzzSeeds -update
// regenerates the generated ones (crashers found by fuzzing are kept beside
// them under their own names).

// fuzzKey is the data key every FuzzOpen object is sealed under.
func fuzzKey() *DataKey { return testDataKey("fuzz") }

func FuzzParseMetadata(f *testing.F) {
	m := validMetadata().Map()
	f.Add(m["mv-version"], m["mv-provider"], m["mv-key-id"], m["mv-wrapped-key"], m["mv-context"], m["mv-plaintext-size"], false)
	f.Fuzz(func(t *testing.T, version, provider, keyID, wrapped, encCtx, size string, upper bool) {
		kv := map[string]string{
			"mv-version":        version,
			"mv-provider":       provider,
			"mv-key-id":         keyID,
			"mv-wrapped-key":    wrapped,
			"mv-context":        encCtx,
			"mv-plaintext-size": size,
		}
		in := maps.Clone(kv)
		if upper {
			delete(in, "mv-context")
			in["MV-Context"] = encCtx
		}
		m, err := ParseMetadata(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "sealer: metadata") {
				t.Fatalf("error %q is not a metadata error", err)
			}
			return
		}
		// What parses renders back byte for byte, and parses again the same.
		if got := m.Map(); !maps.Equal(got, kv) {
			t.Fatalf("Map() = %q, parsed from %q", got, kv)
		}
		m2, err := ParseMetadata(m.Map())
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("reparse: %v", err)
		}
		if err := m.validate(); err != nil {
			t.Fatalf("parsed metadata does not validate: %v", err)
		}
		if CiphertextSize(m.PlaintextSize) < 0 {
			t.Fatalf("size %d parsed", m.PlaintextSize)
		}
	})
}

// FuzzOpen treats arbitrary bytes as a sealed object. Open, random access and
// OpenBlob must never panic, and every byte they return must come from a
// chunk that the reference decryptor (docs/FORMAT.md) authenticates.
//
// claimed < 0 takes the plaintext size from the object's length, so that
// mutated objects get past the size check. The seeds are small (one chunk):
// FuzzOpenEdited covers objects of several chunks without huge inputs.
func FuzzOpen(f *testing.F) {
	dk := fuzzKey()
	for _, n := range []int{0, 5, 100} {
		obj, _ := seal(f, dk, "message", plaintextOf(n))
		f.Add(obj, int64(-1), int64(0), int64(-1))
	}
	f.Fuzz(func(t *testing.T, object []byte, claimed, off, n int64) {
		checkOpen(t, dk, object, claimed, off, n)
	})
}

// fuzzBaseObject is a genuine three-chunk object, the same in every fuzz
// worker (fixed salt).
func fuzzBaseObject(t testing.TB) []byte {
	var buf bytes.Buffer
	w, err := newWriter(&buf, fuzzKey(), "message", bytes.NewReader(seq(0xa0, saltSize)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plaintextOf(2*C + 100))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzOpenEdited applies small edits to a genuine multi-chunk object: edits
// is a list of (3-byte big-endian position, xor byte) groups; cut > 0
// truncates the object to cut mod its length, cut < 0 appends -cut mod 2
// chunks of copied ciphertext. The same properties as FuzzOpen must hold.
func FuzzOpenEdited(f *testing.F) {
	dk := fuzzKey()
	base := fuzzBaseObject(f)
	f.Add([]byte{}, int64(0), int64(-1), int64(0), int64(-1))
	f.Fuzz(func(t *testing.T, edits []byte, cut, claimed, off, n int64) {
		object := bytes.Clone(base)
		for ; len(edits) >= 4; edits = edits[4:] {
			pos := int(edits[0])<<16 | int(edits[1])<<8 | int(edits[2])
			object[pos%len(object)] ^= edits[3]
		}
		switch {
		case cut > 0:
			object = object[:cut%int64(len(object))]
		case cut < 0 && cut != math.MinInt64:
			extra := -cut % (2 * cipherChunkSize)
			object = append(object, base[headerSize:headerSize+int(extra)]...)
		}
		checkOpen(t, dk, object, claimed, off, n)
	})
}

func checkOpen(t *testing.T, dk *DataKey, object []byte, claimed, off, n int64) {
	ctx := context.Background()
	meta, err := metadataFor(dk)
	if err != nil {
		t.Fatal(err)
	}
	meta.PlaintextSize = claimed
	if claimed < 0 {
		meta.PlaintextSize, _ = plaintextSizeOf(int64(len(object)))
	}

	refs, refErr := refChunks(dk.Plaintext, meta.Map(), "message", object)

	if blob, err := OpenBlob(dk, meta, "message", object); err == nil {
		want, err := refOpen(dk.Plaintext, meta.Map(), "message", object)
		if claimed < 0 && (err != nil || !bytes.Equal(blob, want)) {
			t.Fatalf("OpenBlob returned %d bytes the reference rejects: %v", len(blob), err)
		}
	} else if len(object) <= maxBlobSize && !errors.Is(err, ErrDecrypt) {
		t.Fatalf("OpenBlob: %v, want ErrDecrypt", err)
	}

	src := &memSource{data: object}
	s, err := Open(ctx, src.source, int64(len(object)), meta, dk, "message")
	if err != nil {
		if !errors.Is(err, ErrDecrypt) && meta.validate() == nil {
			t.Fatalf("Open: %v, want ErrDecrypt", err)
		}
		return
	}
	if refErr != nil || refs[len(refs)-1] == nil {
		t.Fatalf("Open accepted an object whose final chunk the reference rejects: %v", refErr)
	}
	size := s.Size()
	if off < 0 {
		off = -off
	}
	if off >= 0 {
		off %= size + 1
	} else {
		off = 0
	}
	if n >= 0 {
		n %= size - off + 1
	}
	r, err := s.NewReader(ctx, off, n)
	if err != nil {
		t.Fatalf("NewReader(%d, %d) in range: %v", off, n, err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil && !errors.Is(err, ErrDecrypt) {
		t.Fatalf("read: %v", err)
	}
	// The authentic plaintext from the first chunk of the range on.
	var authentic []byte
	for _, c := range refs[off/C:] {
		if c == nil {
			break
		}
		authentic = append(authentic, c...)
	}
	if int64(len(authentic)) >= off%C {
		authentic = authentic[off%C:]
	} else {
		authentic = nil
	}
	if len(got) > len(authentic) || !bytes.Equal(got, authentic[:len(got)]) {
		t.Fatalf("read returned %d bytes, only %d authentic", len(got), len(authentic))
	}
	if err == nil {
		if n < 0 {
			n = size - off
		}
		if int64(len(got)) != n {
			t.Fatalf("read %d bytes without error, want %d", len(got), n)
		}
	}
}

// TestFuzzSeeds writes the generated seed corpus (with -update) and checks
// that it is there.
func TestFuzzSeeds(t *testing.T) {
	type seed struct {
		target, name string
		args         []any
	}
	var seeds []seed
	m := validMetadata()
	m.Context = ArchiveContext("01jexample")
	for _, tc := range []struct {
		name string
		kv   map[string]string
	}{
		{"valid", m.Map()},
		{"non-ascii-context", validMetadata().Map()},
		{"empty-context", func() map[string]string { kv := m.Map(); kv["mv-context"] = "{}"; return kv }()},
		{"bad-base64", func() map[string]string { kv := m.Map(); kv["mv-wrapped-key"] = "AAEC/v9="; return kv }()},
		{"big-size", func() map[string]string { kv := m.Map(); kv["mv-plaintext-size"] = "1099511627776"; return kv }()},
	} {
		kv := tc.kv
		seeds = append(seeds, seed{"FuzzParseMetadata", tc.name, []any{
			kv["mv-version"], kv["mv-provider"], kv["mv-key-id"], kv["mv-wrapped-key"], kv["mv-context"], kv["mv-plaintext-size"], tc.name == "valid",
		}})
	}
	dk := fuzzKey()
	for _, tc := range []struct {
		name    string
		n       int
		off, ln int64
	}{
		{"empty", 0, 0, -1},
		{"one-byte", 1, 0, 1},
		{"short", 100, 7, 50},
	} {
		obj, _ := seal(t, dk, "message", plaintextOf(tc.n))
		seeds = append(seeds, seed{"FuzzOpen", tc.name, []any{obj, int64(-1), tc.off, tc.ln}})
	}
	obj, _ := seal(t, dk, "message", plaintextOf(100))
	obj[50] ^= 1
	seeds = append(seeds, seed{"FuzzOpen", "corrupt-chunk", []any{obj, int64(-1), int64(0), int64(-1)}})
	pos := func(p int) []byte { return []byte{byte(p >> 16), byte(p >> 8), byte(p)} }
	for _, tc := range []struct {
		name                    string
		edits                   []byte
		cut, claimed, off, size int64
	}{
		{"genuine", nil, 0, -1, C - 5, 10},
		{"genuine-claimed", nil, 0, 2*C + 100, 0, -1},
		{"flip-chunk1", append(pos(headerSize+C+16+7), 0x01), 0, -1, 0, -1},
		{"flip-final-tag", append(pos(int(CiphertextSize(2*C+100))-1), 0x80), 0, -1, 0, -1},
		{"flip-header-salt", append(pos(20), 0x04), 0, -1, 0, -1},
		{"drop-final", nil, int64(headerSize + 2*cipherChunkSize), -1, 0, -1},
		{"drop-final-claimed", nil, int64(headerSize + 2*cipherChunkSize), 2 * C, 0, -1},
		{"append-chunk", nil, -cipherChunkSize, -1, 0, -1},
		{"append-byte", nil, -1, -1, 0, -1},
	} {
		seeds = append(seeds, seed{"FuzzOpenEdited", tc.name, []any{tc.edits, tc.cut, tc.claimed, tc.off, tc.size}})
	}

	for _, s := range seeds {
		path := filepath.Join("testdata", "fuzz", s.target, s.name)
		if *update {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, a := range s.args {
				switch a := a.(type) {
				case []byte:
					fmt.Fprintf(&b, "[]byte(%q)\n", a)
				case string:
					fmt.Fprintf(&b, "string(%q)\n", a)
				case int64:
					fmt.Fprintf(&b, "int64(%d)\n", a)
				case bool:
					fmt.Fprintf(&b, "bool(%v)\n", a)
				}
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("seed missing (go test -run TestFuzzSeeds -update): %v", err)
		}
	}
}
