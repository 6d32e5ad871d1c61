package sealer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestBlobRoundTrip(t *testing.T) {
	dk := testDataKey("blob")
	meta, err := metadataFor(dk)
	if err != nil {
		t.Fatal(err)
	}
	meta.PlaintextSize = 987654 // the message's size: ignored
	for _, n := range []int{0, 1, C - 1, C, C + 1, 3*C + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			plaintext := plaintextOf(n)
			blob, err := SealBlob(dk, "manifest", plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(blob)) != CiphertextSize(int64(n)) {
				t.Fatalf("blob is %d bytes", len(blob))
			}
			got, err := OpenBlob(dk, meta, "manifest", blob)
			if err != nil || !bytes.Equal(got, plaintext) {
				t.Fatalf("OpenBlob: %v", err)
			}
			again, _ := SealBlob(dk, "manifest", plaintext)
			if bytes.Equal(again, blob) {
				t.Fatal("two seals of one blob are identical: the salt is not fresh")
			}
		})
	}
}

func TestBlobBinding(t *testing.T) {
	dk := testDataKey("blob-binding")
	meta, _ := metadataFor(dk)
	blob, err := SealBlob(dk, "manifest", []byte("the manifest"))
	if err != nil {
		t.Fatal(err)
	}
	other := testDataKey("another message")
	otherMeta, _ := metadataFor(other)
	sameKeyOtherMeta := meta
	sameKeyOtherMeta.Context = ArchiveContext("another message")
	message, msgMeta := seal(t, dk, "message", []byte("the manifest"))
	for _, tc := range []struct {
		name    string
		dk      *DataKey
		meta    Metadata
		purpose string
		blob    []byte
	}{
		{"as a message", dk, meta, "message", blob},
		{"another message's metadata", dk, otherMeta, "manifest", blob},
		{"same key, another context", dk, sameKeyOtherMeta, "manifest", blob},
		{"another data key", other, meta, "manifest", blob},
		{"a message as a manifest", dk, msgMeta, "manifest", message},
		{"flipped byte", dk, meta, "manifest", func() []byte { b := bytes.Clone(blob); b[len(b)-20] ^= 1; return b }()},
		{"truncated", dk, meta, "manifest", blob[:len(blob)-1]},
		{"trailing byte", dk, meta, "manifest", append(bytes.Clone(blob), 0)},
		{"empty", dk, meta, "manifest", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OpenBlob(tc.dk, tc.meta, tc.purpose, tc.blob)
			if !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("OpenBlob = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}
	// The message itself opens as a message, as a blob too (same format).
	if got, err := OpenBlob(dk, msgMeta, "message", message); err != nil || string(got) != "the manifest" {
		t.Fatalf("message as blob: %q, %v", got, err)
	}
}

func TestBlobLimits(t *testing.T) {
	dk := testDataKey("blob-limits")
	meta, _ := metadataFor(dk)
	if _, err := OpenBlob(dk, meta, "manifest", make([]byte, 16<<20+1)); err == nil || errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("16 MiB + 1 blob: %v", err)
	}
	largest := int64(16 << 20)
	for CiphertextSize(largest) > 16<<20 {
		largest--
	}
	blob, err := SealBlob(dk, "manifest", make([]byte, largest))
	if err != nil {
		t.Fatalf("largest blob: %v", err)
	}
	if _, err := OpenBlob(dk, meta, "manifest", blob); err != nil {
		t.Fatalf("largest blob: %v", err)
	}
	if _, err := SealBlob(dk, "manifest", make([]byte, largest+1)); err == nil {
		t.Fatal("sealed a blob over the limit")
	}
}
