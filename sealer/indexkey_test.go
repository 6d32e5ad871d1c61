package sealer

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadIndexKey(t *testing.T) {
	path, k := newKeyring(t)
	got, err := LoadIndexKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, k.IndexKey()) {
		t.Fatal("LoadIndexKey differs from the keyring's index key")
	}
	if _, err := RotateKeyring(path); err != nil {
		t.Fatal(err)
	}
	if again, err := LoadIndexKey(path); err != nil || !bytes.Equal(again, got) {
		t.Fatalf("after a rotation: %x, %v; want the same index key", again, err)
	}

	dir := t.TempDir()
	worldReadable := filepath.Join(dir, "open.json")
	b, _ := os.ReadFile(path)
	os.WriteFile(worldReadable, b, 0o644)
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(strings.Replace(string(b), `"index_key": "`, `"index_key": "!`, 1)), 0o600)
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "none.json"), "no such file"},
		{"group or others may read it", worldReadable, "chmod 600"},
		{"bad index key", broken, "index_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadIndexKey(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || k != nil {
				t.Fatalf("LoadIndexKey = %x, %v; want an error naming %q", k, err, tc.want)
			}
		})
	}
}
