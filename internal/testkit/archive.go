package testkit

import (
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/sealer"
)

// LocalArchive makes a new local keyring (dir/keyring.json) and an fs
// store (dir/archive): the key provider and store most package tests
// deliver into.
func LocalArchive(t testing.TB, dir string) (*sealer.Keyring, *fsstore.Store) {
	t.Helper()
	krPath := filepath.Join(dir, "keyring.json")
	if err := sealer.InitKeyring(krPath); err != nil {
		t.Fatal(err)
	}
	kr, err := sealer.LoadKeyring(krPath)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fsstore.New(filepath.Join(dir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	return kr, fs
}
