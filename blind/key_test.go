package blind

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func testSecret() []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

// TestTokenVector pins the token of one term under one secret. Tokens are
// stored in catalogs that outlive releases: if this value changes, every
// existing catalog silently stops matching.
func TestTokenVector(t *testing.T) {
	k := NewKey(testSecret())
	const want = Token(0x53f1a6e501994067)
	if got := k.Token(FieldSubject, "invoice"); got != want {
		t.Fatalf("Token(subject, invoice) = %#x, want %#x", uint64(got), uint64(want))
	}
}

// TestTokenConstruction recomputes a token from the documented
// construction with the standard library alone.
func TestTokenConstruction(t *testing.T) {
	secret := testSecret()
	tk, err := hkdf.Key(sha256.New, secret, nil, "mailvaultd catalog token key v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey(secret)
	for _, tc := range []struct {
		f    Field
		term string
	}{{FieldFrom, "a@example.com"}, {FieldBody, "東京"}, {FieldParty, ""}} {
		m := hmac.New(sha256.New, tk)
		m.Write([]byte(string(tc.f) + "\x00" + tc.term))
		want := Token(binary.BigEndian.Uint64(m.Sum(nil)))
		if got := k.Token(tc.f, tc.term); got != want {
			t.Errorf("Token(%s, %q) = %#x, want %#x", tc.f, tc.term, uint64(got), uint64(want))
		}
	}
}

func TestTokenSeparatesFieldsAndKeys(t *testing.T) {
	k := NewKey(testSecret())
	other := testSecret()
	other[0] ^= 1
	k2 := NewKey(other)
	a := k.Token(FieldSubject, "x")
	for name, b := range map[string]Token{
		"other field":  k.Token(FieldBody, "x"),
		"other key":    k2.Token(FieldSubject, "x"),
		"field joined": k.Token(Field("subjectx"), ""),
	} {
		if a == b {
			t.Errorf("%s: same token %#x", name, uint64(a))
		}
	}
	// The token key is not the index secret itself.
	raw := hmac.New(sha256.New, testSecret())
	raw.Write([]byte("subject\x00x"))
	if Token(binary.BigEndian.Uint64(raw.Sum(nil))) == a {
		t.Error("the token key is the index secret")
	}
}

func TestKeyClear(t *testing.T) {
	k := NewKey(testSecret())
	before := k.Token(FieldBody, "x")
	k.Clear()
	for _, b := range k.key {
		if b != 0 {
			t.Fatal("Clear left key bytes")
		}
	}
	if k.Token(FieldBody, "x") == before {
		t.Error("token unchanged after Clear")
	}
}
