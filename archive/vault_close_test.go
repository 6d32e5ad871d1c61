package archive_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
)

// TestVaultOwnsAndClearsIndexKey: the Vault keeps the one copy of the index
// key it was given (no clone left behind uncleared) and Close clears it.
func TestVaultOwnsAndClearsIndexKey(t *testing.T) {
	s, err := fsstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0xa5}, 32)
	v := archive.NewVault(s, key)
	env := archive.Envelope{From: "a@example.test", To: []string{"b@example.test"}}
	before := v.Fingerprint(env).Sum(nil)
	v.Close()
	if !bytes.Equal(key, make([]byte, 32)) {
		t.Fatalf("after Close the index key is %x, want zeros", key)
	}
	if after := v.Fingerprint(env).Sum(nil); bytes.Equal(before, after) {
		t.Fatal("the Vault hashes with a key Close did not clear: it holds a copy of its own")
	}
}
