package catalog_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/mailvault/mailvaultd/catalog"
)

func newBox(t *testing.T, fill byte) *catalog.SummaryBox {
	t.Helper()
	b, err := catalog.NewSummaryBox(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSummaryBoxRoundTrip(t *testing.T) {
	b := newBox(t, 7)
	for _, plain := range [][]byte{nil, {}, []byte("Subject: quarterly numbers"), bytes.Repeat([]byte{0xff}, 70000)} {
		sealed := b.Seal("id1", plain)
		if len(plain) > 4 && bytes.Contains(sealed, plain[:5]) {
			t.Errorf("sealed summary holds plaintext")
		}
		got, err := b.Open("id1", sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Open = %q, %v; want %q", got, err, plain)
		}
	}
	// Random nonces: the same summary seals differently each time.
	if bytes.Equal(b.Seal("id1", []byte("x")), b.Seal("id1", []byte("x"))) {
		t.Error("two seals of one summary are equal")
	}
}

func TestSummaryBoxRejects(t *testing.T) {
	b := newBox(t, 7)
	sealed := b.Seal("id1", []byte("From: alice@example.org"))
	flipped := func(i int) []byte { s := bytes.Clone(sealed); s[i] ^= 1; return s }
	for name, tc := range map[string]struct {
		box    *catalog.SummaryBox
		id     string
		sealed []byte
	}{
		"another row":         {b, "id2", sealed},
		"another secret":      {newBox(t, 8), "id1", sealed},
		"version byte":        {b, "id1", flipped(0)},
		"nonce":               {b, "id1", flipped(1)},
		"ciphertext":          {b, "id1", flipped(14)},
		"tag":                 {b, "id1", flipped(len(sealed) - 1)},
		"truncated":           {b, "id1", sealed[:len(sealed)-1]},
		"shorter than header": {b, "id1", sealed[:5]},
		"empty":               {b, "id1", nil},
	} {
		if _, err := tc.box.Open(tc.id, tc.sealed); !errors.Is(err, catalog.ErrSummary) {
			t.Errorf("%s: Open = %v, want ErrSummary", name, err)
		}
	}
}

func TestSummaryBoxClear(t *testing.T) {
	b := newBox(t, 7)
	sealed := b.Seal("id1", []byte("x"))
	b.Clear()
	if _, err := b.Open("id1", sealed); !errors.Is(err, catalog.ErrSummary) {
		t.Errorf("Open after Clear = %v, want ErrSummary", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Seal after Clear did not panic")
		}
	}()
	b.Seal("id1", []byte("x"))
}

func TestSummaryBoxSecretLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := catalog.NewSummaryBox(make([]byte, n)); err == nil {
			t.Errorf("%d-byte secret accepted", n)
		}
	}
}

// TestSummaryFormat pins the format a summary is sealed in, independently of
// SummaryBox: version byte 1, a 12-byte nonce, AES-256-GCM under
// HKDF-SHA256(secret, no salt, "mailvaultd catalog summary key v1") with
// AAD = version byte || id.
func TestSummaryFormat(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	sealed := newBox(t, 7).Seal("id1", []byte("hello"))
	key, err := hkdf.Key(sha256.New, secret, nil, "mailvaultd catalog summary key v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(block)
	if sealed[0] != 1 || len(sealed) != 1+12+5+16 {
		t.Fatalf("sealed = %x: want version 1 and %d bytes", sealed, 1+12+5+16)
	}
	plain, err := g.Open(nil, sealed[1:13], sealed[13:], append([]byte{1}, "id1"...))
	if err != nil || string(plain) != "hello" {
		t.Errorf("open by the documented format: %q, %v", plain, err)
	}
}
