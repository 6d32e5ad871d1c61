package sealer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKeyring(t *testing.T) (path string, k *Keyring) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "keyring.json")
	if err := InitKeyring(path); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, k
}

func TestKeyringInit(t *testing.T) {
	path, k := newKeyring(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the keyring (no temporary files)", len(entries))
	}
	if k.current != 1 || len(k.master) != 1 || len(k.IndexKey()) != 32 {
		t.Fatalf("new keyring: current %d, %d master keys, index key %d bytes", k.current, len(k.master), len(k.IndexKey()))
	}
	if bytes.Equal(k.IndexKey(), k.master[1]) {
		t.Fatal("index key equals the master key")
	}

	before, _ := os.ReadFile(path)
	err = InitKeyring(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second InitKeyring: %v; want an error naming %s and saying it exists", err, path)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("second InitKeyring changed the keyring")
	}
	// The no-overwrite guard also holds past the first check.
	tmp := filepath.Join(t.TempDir(), "k")
	os.WriteFile(tmp, []byte("precious"), 0o600)
	if err := writeKeyringFile(tmp, []byte("new"), false); err == nil {
		t.Fatal("writeKeyringFile replaced an existing file")
	}
	if b, _ := os.ReadFile(tmp); string(b) != "precious" {
		t.Fatal("existing file changed")
	}
}

func TestKeyringInitCreatesDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "keys", "keyring.json")
	if err := InitKeyring(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(path); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		t.Run(mode.String(), func(t *testing.T) {
			path, _ := newKeyring(t)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyring(path)
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600") ||
				!strings.Contains(msg, "0"+strconvOctal(mode)) {
				t.Fatalf("error %q must name the path, the mode and chmod 600", msg)
			}
			if _, err := RotateKeyring(path); err == nil {
				t.Fatal("rotated a keyring others can read")
			}
		})
	}
	t.Run("0400", func(t *testing.T) {
		path, _ := newKeyring(t)
		os.Chmod(path, 0o400)
		if _, err := LoadKeyring(path); err != nil {
			t.Fatal(err)
		}
	})
}

func strconvOctal(m os.FileMode) string {
	const digits = "01234567"
	p := m.Perm()
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

func TestKeyringRotate(t *testing.T) {
	ctx := context.Background()
	path, k1 := newKeyring(t)
	encCtx := ArchiveContext("01jrotate")
	old, err := k1.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if old.KeyID != "local:1" || old.Provider != "local" || len(old.Plaintext) != 32 {
		t.Fatalf("data key: %+v", old)
	}

	v, err := RotateKeyring(path)
	if err != nil || v != 2 {
		t.Fatalf("RotateKeyring = %d, %v", v, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rotate %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("%d directory entries after rotate", len(entries))
	}
	k2, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.IndexKey(), k2.IndexKey()) {
		t.Fatal("rotation changed the index key")
	}
	got, err := k2.Decrypt(ctx, old.KeyID, old.Wrapped, encCtx)
	if err != nil || !bytes.Equal(got, old.Plaintext) {
		t.Fatalf("old version after rotate: %v", err)
	}
	nk, err := k2.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if nk.KeyID != "local:2" {
		t.Fatalf("new key id %s, want local:2", nk.KeyID)
	}
	if _, err := k1.Decrypt(ctx, nk.KeyID, nk.Wrapped, encCtx); err == nil || errors.Is(err, ErrDecrypt) {
		t.Fatalf("the old keyring unwrapping version 2: %v; want an error naming the missing version", err)
	}
	if v, err := RotateKeyring(path); err != nil || v != 3 {
		t.Fatalf("second rotate = %d, %v", v, err)
	}
}

func TestKeyringDecrypt(t *testing.T) {
	ctx := context.Background()
	_, k := newKeyring(t)
	encCtx := ArchiveContext("01jdecrypt")
	dk, err := k.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	encCtx["mailvaultd:archive-id"] = "changed after the call"
	if dk.Context[ContextArchiveID] != "01jdecrypt" {
		t.Fatal("DataKey shares the caller's context map")
	}
	encCtx = ArchiveContext("01jdecrypt")
	for _, tc := range []struct {
		name    string
		keyID   string
		wrapped func() []byte
		ctx     map[string]string
		decrypt bool // want ErrDecrypt rather than another error
	}{
		{"wrong context", "local:1", nil, ArchiveContext("01jother"), true},
		{"extra context entry", "local:1", nil, map[string]string{ContextArchiveID: "01jdecrypt", "x": "y"}, true},
		{"no context", "local:1", nil, nil, true},
		{"tampered nonce", "local:1", func() []byte { b := bytes.Clone(dk.Wrapped); b[0] ^= 1; return b }, encCtx, true},
		{"tampered tag", "local:1", func() []byte { b := bytes.Clone(dk.Wrapped); b[len(b)-1] ^= 1; return b }, encCtx, true},
		{"short", "local:1", func() []byte { return dk.Wrapped[:59] }, encCtx, true},
		{"long", "local:1", func() []byte { return append(bytes.Clone(dk.Wrapped), 0) }, encCtx, true},
		{"unknown version", "local:9", nil, encCtx, false},
		{"version 0", "local:0", nil, encCtx, false},
		{"version 01", "local:01", nil, encCtx, false},
		{"other provider", "kms:1", nil, encCtx, false},
		{"no version", "local:", nil, encCtx, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := dk.Wrapped
			if tc.wrapped != nil {
				wrapped = tc.wrapped()
			}
			pt, err := k.Decrypt(ctx, tc.keyID, wrapped, tc.ctx)
			if err == nil || pt != nil {
				t.Fatal("unwrapped")
			}
			if errors.Is(err, ErrDecrypt) != tc.decrypt {
				t.Fatalf("err = %v", err)
			}
		})
	}
	got, err := k.Decrypt(ctx, dk.KeyID, dk.Wrapped, encCtx)
	if err != nil || !bytes.Equal(got, dk.Plaintext) {
		t.Fatalf("genuine key: %v", err)
	}
}

func TestKeyringParseErrors(t *testing.T) {
	key := strings.Repeat("A", 43) + "="
	valid := `{"version":1,"current":1,"master_keys":[{"version":1,"created":"2026-01-02T03:04:05Z","key":"` + key + `"}],"index_key":"` + key + `"}`
	if _, err := parseKeyring([]byte(valid)); err != nil {
		t.Fatalf("valid keyring: %v", err)
	}
	for _, tc := range []struct{ name, json, field string }{
		{"not JSON", `{`, "keyring"},
		{"not an object", `[]`, "keyring"},
		{"unknown field", strings.Replace(valid, `"current"`, `"extra":1,"current"`, 1), "extra"},
		{"no version", strings.Replace(valid, `"version":1,"current"`, `"current"`, 1), "version"},
		{"version 2", strings.Replace(valid, `"version":1,"current"`, `"version":2,"current"`, 1), "version"},
		{"no current", strings.Replace(valid, `"current":1,`, ``, 1), "current"},
		{"current string", strings.Replace(valid, `"current":1`, `"current":"1"`, 1), "current"},
		{"current unknown", strings.Replace(valid, `"current":1`, `"current":2`, 1), "current"},
		{"master_keys misspelt", strings.Replace(valid, `"master_keys"`, `"masterkeys"`, 1), "masterkeys"},
		{"master keys empty", `{"version":1,"current":1,"master_keys":[],"index_key":"` + key + `"}`, "master_keys"},
		{"master keys object", `{"version":1,"current":1,"master_keys":{},"index_key":"` + key + `"}`, "master_keys"},
		{"master key version 0", strings.Replace(valid, `{"version":1,"created"`, `{"version":0,"created"`, 1), "master_keys[0].version"},
		{"master key unknown field", strings.Replace(valid, `"created"`, `"note":"x","created"`, 1), "master_keys[0]"},
		{"master key bad time", strings.Replace(valid, `2026-01-02T03:04:05Z`, `yesterday`, 1), "master_keys[0].created"},
		{"master key no time", strings.Replace(valid, `"created":"2026-01-02T03:04:05Z",`, ``, 1), "master_keys[0].created"},
		{"master key short", strings.Replace(valid, `"key":"`+key, `"key":"AAAA`, 1), "master_keys[0].key"},
		{"master key bad base64", strings.Replace(valid, `"key":"A`, `"key":"!`, 1), "master_keys[0].key"},
		{"master key 33 bytes", strings.Replace(valid, `"key":"`+key, `"key":"`+strings.Repeat("A", 44), 1), "master_keys[0].key"},
		{"master key escaped", strings.Replace(valid, `"key":"A`, `"key":"\u0041`, 1), "master_keys[0].key"},
		{"duplicate version", strings.Replace(valid, `}],`, `},{"version":1,"created":"2026-01-02T03:04:05Z","key":"`+key+`"}],`, 1), "master_keys[1].version"},
		{"no index key", strings.Replace(valid, `,"index_key":"`+key+`"`, ``, 1), "index_key"},
		{"index key short", strings.Replace(valid, `"index_key":"`+key, `"index_key":"AAAA`, 1), "index_key"},
		{"trailing data", valid + `{}`, "keyring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseKeyring([]byte(tc.json))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
	t.Run("through LoadKeyring", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keyring.json")
		os.WriteFile(path, []byte(strings.Replace(valid, `"current":1`, `"current":7`, 1)), 0o600)
		_, err := LoadKeyring(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "current") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadKeyring(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestKeyringEndToEnd seals with one Keyring, and unwraps and opens with
// another loaded from the same file, through the stored metadata.
func TestKeyringEndToEnd(t *testing.T) {
	ctx := context.Background()
	path, k := newKeyring(t)
	dk, err := k.GenerateDataKey(ctx, ArchiveContext("01jend2end"))
	if err != nil {
		t.Fatal(err)
	}
	plaintext := plaintextOf(2*C + 3)
	object, meta := seal(t, dk, "message", plaintext)
	manifest, err := SealBlob(dk, "manifest", []byte(`{"id":"01jend2end"}`))
	if err != nil {
		t.Fatal(err)
	}
	dk.Clear()
	if !bytes.Equal(dk.Plaintext, make([]byte, 32)) {
		t.Fatal("Clear left key bytes")
	}
	stored := meta.Map()

	k2, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMetadata(stored)
	if err != nil {
		t.Fatal(err)
	}
	dk2, err := Unwrap(ctx, k2, m)
	if err != nil {
		t.Fatal(err)
	}
	defer dk2.Clear()
	if dk2.KeyID != "local:1" || dk2.Provider != "local" || !bytes.Equal(dk2.Wrapped, m.WrappedKey) || dk2.Context[ContextArchiveID] != "01jend2end" {
		t.Fatalf("unwrapped key: %+v", dk2)
	}
	src := &memSource{data: object}
	s, err := Open(ctx, src.source, int64(len(object)), m, dk2, "message")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.NewReader(ctx, 0, -1)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("read: %v", err)
	}
	mb, err := OpenBlob(dk2, m, "manifest", manifest)
	if err != nil || string(mb) != `{"id":"01jend2end"}` {
		t.Fatalf("manifest: %q, %v", mb, err)
	}

	t.Run("provider mismatch", func(t *testing.T) {
		m := m
		m.Provider = "awskms"
		if _, err := Unwrap(ctx, k2, m); err == nil || !strings.Contains(err.Error(), "awskms") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("context swapped", func(t *testing.T) {
		m := m
		m.Context = ArchiveContext("01jother")
		if _, err := Unwrap(ctx, k2, m); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("key id swapped", func(t *testing.T) {
		if _, err := RotateKeyring(path); err != nil {
			t.Fatal(err)
		}
		k3, err := LoadKeyring(path)
		if err != nil {
			t.Fatal(err)
		}
		m := m
		m.KeyID = "local:2"
		if _, err := Unwrap(ctx, k3, m); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("short key from provider", func(t *testing.T) {
		if _, err := Unwrap(ctx, shortKeyProvider{}, m); err == nil {
			t.Fatal("accepted a 16-byte data key")
		}
	})
}

type shortKeyProvider struct{}

func (shortKeyProvider) Name() string { return "local" }
func (shortKeyProvider) GenerateDataKey(context.Context, map[string]string) (*DataKey, error) {
	return nil, errors.New("unused")
}
func (shortKeyProvider) Decrypt(context.Context, string, []byte, map[string]string) ([]byte, error) {
	return make([]byte, 16), nil
}
