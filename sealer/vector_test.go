package sealer

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The test vectors of docs/FORMAT.md, kept in testdata/vector_v1.txt (go test
// -run TestVectors -update rewrites it; the document quotes it).

func seq(from byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

func renderVectors(t *testing.T) []byte {
	var out bytes.Buffer
	for _, v := range []struct {
		name      string
		purpose   string
		plaintext []byte
	}{
		{"short message", "message", []byte("Hello, mailvaultd!\r\n")},
		{"empty manifest", "manifest", nil},
	} {
		dk := &DataKey{
			Plaintext: seq(0x00, 32),
			Wrapped:   seq(0x40, 60),
			KeyID:     "local:1",
			Provider:  "local",
			Context:   ArchiveContext("01jexample"),
		}
		salt := seq(0x80, 32)
		var obj bytes.Buffer
		w, err := newWriter(&obj, dk, v.purpose, bytes.NewReader(salt))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(v.plaintext)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		meta := w.Metadata()
		hdr := obj.Bytes()[:headerSize]
		info := payloadInfo(hdr, &meta, v.purpose)
		key, err := hkdf.Key(sha256.New, dk.Plaintext, salt, string(info), 32)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "# %s\n", v.name)
		fmt.Fprintf(&out, "data-key: %x\n", dk.Plaintext)
		fmt.Fprintf(&out, "salt: %x\n", salt)
		fmt.Fprintf(&out, "purpose: %s\n", v.purpose)
		fmt.Fprintf(&out, "plaintext: %x\n", v.plaintext)
		md := meta.Map()
		for _, k := range slices.Sorted(maps.Keys(md)) {
			fmt.Fprintf(&out, "%s: %s\n", k, md[k])
		}
		fmt.Fprintf(&out, "header: %x\n", hdr)
		fmt.Fprintf(&out, "hkdf-info: %x\n", info)
		fmt.Fprintf(&out, "payload-key: %x\n", key)
		fmt.Fprintf(&out, "object: %x\n\n", obj.Bytes())
	}
	return out.Bytes()
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vector_v1.txt")
	got := renderVectors(t)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the format changed: %s differs (run with -update only if that is intended, and bump the version)\ngot:\n%s", path, got)
	}

	// Each vector decrypts with the reference decryptor and with Open.
	for _, block := range strings.Split(strings.TrimSpace(string(want)), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(block, "\n")[1:] {
			k, v, _ := strings.Cut(line, ": ")
			fields[k] = v
		}
		unhex := func(k string) []byte {
			b, err := hex.DecodeString(fields[k])
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			return b
		}
		md := map[string]string{}
		for k, v := range fields {
			if strings.HasPrefix(k, "mv-") {
				md[k] = v
			}
		}
		object, plaintext := unhex("object"), unhex("plaintext")
		got, err := refOpen(unhex("data-key"), md, fields["purpose"], object)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("reference decryptor: %v", err)
		}
		meta, err := ParseMetadata(md)
		if err != nil {
			t.Fatal(err)
		}
		got, err = openAll(object, meta, &DataKey{Plaintext: unhex("data-key")}, fields["purpose"])
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("Open: %v", err)
		}
	}
}
