package sealer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Keyring is the local key provider: a JSON file (mode 0600, enforced on
// load) of versioned 256-bit master keys plus a separate 256-bit index key
// used for keyed hashes of addresses and message fingerprints. New data keys
// are wrapped under the newest version; older versions still unwrap.
//
// A loaded Keyring is read-only and safe for concurrent use.
type Keyring struct {
	current int
	master  map[int][]byte
	index   []byte
}

var _ KeyProvider = (*Keyring)(nil)

const (
	keyringVersion     = 1
	keyringMaxFileSize = 1 << 20
	keyringMaxVersions = 1 << 16

	localProvider = "local"
	localKeyIDPfx = localProvider + ":"

	// wrapDomain separates key wrapping from every other use of a master key.
	wrapDomain    = "mailvaultd/sealer/v1 local key wrap"
	localWrapSize = nonceSize + dataKeySize + tagSize
)

// keyringFile is the keyring's JSON file in memory.
type keyringFile struct {
	Version    int
	Current    int
	MasterKeys []masterKey
	IndexKey   []byte
}

type masterKey struct {
	Version int
	Created string // RFC 3339
	Key     []byte
}

func (f *keyringFile) clear() {
	if f == nil {
		return
	}
	for _, mk := range f.MasterKeys {
		clear(mk.Key)
	}
	clear(f.IndexKey)
}

// InitKeyring creates a new keyring at path; it fails if path exists.
//
// A missing parent directory is created (mode 0700). The file is written
// whole to a temporary file beside path, synced, and linked into place (mode
// 0600), so a crash leaves either no keyring or a complete one.
func InitKeyring(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return errKeyringExists(path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sealer: keyring %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sealer: keyring %s: %w", path, err)
	}
	f := &keyringFile{
		Version:    keyringVersion,
		Current:    1,
		MasterKeys: []masterKey{{Version: 1, Created: now(), Key: newKey()}},
		IndexKey:   newKey(),
	}
	defer f.clear()
	data := f.marshal()
	defer clear(data)
	return writeKeyringFile(path, data, false)
}

// RotateKeyring adds a new master key version and returns its number.
//
// The new version is one more than the highest present (current+1 for a
// keyring only ever changed by RotateKeyring) and becomes current. The file is
// replaced atomically. Rotations must not run concurrently on one file.
func RotateKeyring(path string) (int, error) {
	f, err := readKeyringFile(path)
	if err != nil {
		return 0, err
	}
	defer f.clear()
	next := 0
	for _, mk := range f.MasterKeys {
		next = max(next, mk.Version)
	}
	next++
	if next > keyringMaxVersions {
		return 0, fmt.Errorf("sealer: keyring %s: no versions left after %d", path, keyringMaxVersions)
	}
	f.MasterKeys = append(f.MasterKeys, masterKey{Version: next, Created: now(), Key: newKey()})
	f.Current = next
	data := f.marshal()
	defer clear(data)
	if err := writeKeyringFile(path, data, true); err != nil {
		return 0, err
	}
	return next, nil
}

// LoadKeyring reads and validates the keyring at path.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := readKeyringFile(path)
	if err != nil {
		return nil, err
	}
	defer f.clear()
	k := &Keyring{current: f.Current, master: make(map[int][]byte, len(f.MasterKeys)), index: slices.Clone(f.IndexKey)}
	for _, mk := range f.MasterKeys {
		k.master[mk.Version] = slices.Clone(mk.Key)
	}
	return k, nil
}

// LoadIndexKey reads only the index key from the keyring at path, with the
// same checks as LoadKeyring (mode, size, every field). It is for callers that
// need the index key but not the local key provider (keys.provider: awskms).
// The caller owns the returned 32 bytes and clears them; the master keys are
// cleared before it returns.
func LoadIndexKey(path string) ([]byte, error) {
	f, err := readKeyringFile(path)
	if err != nil {
		return nil, err
	}
	defer f.clear()
	k := f.IndexKey
	f.IndexKey = nil // handed over, not copied: one copy to clear
	return k, nil
}

// IndexKey is the 256-bit key for keyed hashes (HMAC-SHA256); never a data key.
// It returns a copy, which the caller may clear; rotation does not change it.
func (k *Keyring) IndexKey() []byte { return slices.Clone(k.index) }

func (k *Keyring) Name() string { return localProvider }

// GenerateDataKey returns a fresh key wrapped under the current master key:
// AES-256-GCM, random nonce, the key id and encCtx as additional data.
func (k *Keyring) GenerateDataKey(ctx context.Context, encCtx map[string]string) (*DataKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validateContext(encCtx); err != nil {
		return nil, err
	}
	keyID := localKeyIDPfx + strconv.Itoa(k.current)
	aead, err := newWrapAEAD(k.master[k.current])
	if err != nil {
		return nil, err
	}
	pt := newKey()
	wrapped := make([]byte, nonceSize, localWrapSize)
	rand.Read(wrapped)
	wrapped = aead.Seal(wrapped, wrapped[:nonceSize], pt, wrapAAD(keyID, encCtx))
	return &DataKey{
		Plaintext: pt,
		Wrapped:   wrapped,
		KeyID:     keyID,
		Provider:  localProvider,
		Context:   maps.Clone(encCtx),
	}, nil
}

// Decrypt unwraps a key from GenerateDataKey. A key id naming a version the
// keyring lacks is reported as such; a wrong context or tampered bytes is
// ErrDecrypt.
func (k *Keyring) Decrypt(ctx context.Context, keyID string, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, ok := parseLocalKeyID(keyID)
	if !ok {
		return nil, fmt.Errorf("sealer: local keyring: malformed key id %q", truncate(keyID, 40))
	}
	mk, ok := k.master[v]
	if !ok {
		return nil, fmt.Errorf("sealer: local keyring has no master key version %d", v)
	}
	if err := validateContext(encCtx); err != nil {
		return nil, err
	}
	if len(wrapped) != localWrapSize {
		return nil, ErrDecrypt
	}
	aead, err := newWrapAEAD(mk)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], wrapAAD(keyID, encCtx))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func newWrapAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealer: local keyring: %w", err)
	}
	return cipher.NewGCM(block)
}

// wrapAAD binds a wrapped key to the key id it claims and to its context.
func wrapAAD(keyID string, encCtx map[string]string) []byte {
	b := appendLP(nil, wrapDomain)
	b = appendLP(b, keyID)
	return appendContextBinary(b, encCtx)
}

// parseLocalKeyID accepts "local:<version>", version in canonical decimal.
func parseLocalKeyID(keyID string) (int, bool) {
	s, ok := strings.CutPrefix(keyID, localKeyIDPfx)
	if !ok {
		return 0, false
	}
	v, err := parseDecimal(s, keyringMaxVersions)
	if err != nil || v < 1 {
		return 0, false
	}
	return int(v), true
}

func newKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func errKeyringExists(path string) error {
	return fmt.Errorf("sealer: keyring %s already exists; refusing to overwrite it", path)
}

// readKeyringFile opens, checks the mode of, reads and parses a keyring.
func readKeyringFile(path string) (*keyringFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sealer: keyring: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("sealer: keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sealer: keyring %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("sealer: keyring %s has mode %04o, which lets group or others read it; run chmod 600 %s",
			path, perm, path)
	}
	if fi.Size() > keyringMaxFileSize {
		return nil, fmt.Errorf("sealer: keyring %s is larger than %d bytes", path, keyringMaxFileSize)
	}
	// One buffer of the stat'ed size, so that there is one copy to clear.
	data := make([]byte, fi.Size())
	defer clear(data)
	if _, err := io.ReadFull(fh, data); err != nil {
		return nil, fmt.Errorf("sealer: keyring %s: %w", path, err)
	}
	if n, _ := fh.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("sealer: keyring %s changed while being read", path)
	}
	f, err := parseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("sealer: keyring %s: %w", path, err)
	}
	return f, nil
}

// parseKeyring validates every field, naming it in any error. Raw JSON
// values are copies of data and are cleared before returning.
func parseKeyring(data []byte) (_ *keyringFile, err error) {
	top, err := jsonFields(data, "keyring", "version", "current", "master_keys", "index_key")
	if err != nil {
		return nil, err
	}
	defer clearFields(top)
	f := &keyringFile{}
	defer func() {
		if err != nil {
			f.clear()
		}
	}()

	if f.Version, err = jsonInt(top, "version", "version", keyringVersion); err != nil {
		return nil, err
	}
	if f.Version != keyringVersion {
		return nil, fmt.Errorf("version: unsupported keyring version %d (want %d)", f.Version, keyringVersion)
	}
	if f.Current, err = jsonInt(top, "current", "current", keyringMaxVersions); err != nil {
		return nil, err
	}

	var raws []json.RawMessage
	if raw, ok := top["master_keys"]; !ok {
		return nil, errors.New("master_keys: missing")
	} else if err := json.Unmarshal(raw, &raws); err != nil {
		return nil, errors.New("master_keys: not an array")
	}
	defer func() {
		for _, r := range raws {
			clear(r)
		}
	}()
	if len(raws) == 0 {
		return nil, errors.New("master_keys: empty")
	}
	if len(raws) > keyringMaxVersions {
		return nil, fmt.Errorf("master_keys: more than %d entries", keyringMaxVersions)
	}
	seen := make(map[int]bool, len(raws))
	for i, raw := range raws {
		name := fmt.Sprintf("master_keys[%d]", i)
		mf, err := jsonFields(raw, name, "version", "created", "key")
		if err != nil {
			return nil, err
		}
		var mk masterKey
		mk.Version, err = jsonInt(mf, "version", name+".version", keyringMaxVersions)
		if err == nil && seen[mk.Version] {
			err = fmt.Errorf("%s.version: version %d appears twice", name, mk.Version)
		}
		if err == nil {
			mk.Created, err = jsonTime(mf, "created", name+".created")
		}
		if err == nil {
			mk.Key, err = jsonKey(mf, "key", name+".key")
		}
		clearFields(mf)
		if err != nil {
			return nil, err
		}
		seen[mk.Version] = true
		f.MasterKeys = append(f.MasterKeys, mk)
	}
	if !seen[f.Current] {
		return nil, fmt.Errorf("current: no entry of master_keys has version %d", f.Current)
	}
	if f.IndexKey, err = jsonKey(top, "index_key", "index_key"); err != nil {
		return nil, err
	}
	return f, nil
}

// jsonFields decodes one JSON object into raw values (copies of data) and
// rejects keys it does not allow.
func jsonFields(data []byte, name string, allowed ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		clearFields(m)
		return nil, fmt.Errorf("%s: not a JSON object", name)
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			clearFields(m)
			return nil, fmt.Errorf("%s: unknown field %q", name, truncate(k, 40))
		}
	}
	return m, nil
}

func clearFields(m map[string]json.RawMessage) {
	for _, v := range m {
		clear(v)
	}
}

func jsonInt(m map[string]json.RawMessage, key, field string, max int) (int, error) {
	raw, ok := m[key]
	if !ok {
		return 0, fmt.Errorf("%s: missing", field)
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil || v < 1 || v > max {
		return 0, fmt.Errorf("%s: want an integer from 1 to %d", field, max)
	}
	return v, nil
}

func jsonTime(m map[string]json.RawMessage, key, field string) (string, error) {
	raw, ok := m[key]
	if !ok {
		return "", fmt.Errorf("%s: missing", field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || len(s) > 64 {
		return "", fmt.Errorf("%s: want an RFC 3339 time string", field)
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return "", fmt.Errorf("%s: want an RFC 3339 time string", field)
	}
	return s, nil
}

// jsonKey decodes a base64 string of 32 bytes without going through a Go
// string, so that every copy of the key can be cleared.
func jsonKey(m map[string]json.RawMessage, key, field string) ([]byte, error) {
	raw, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("%s: missing", field)
	}
	enc := base64.StdEncoding.Strict()
	if len(raw) != 2+enc.EncodedLen(32) || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("%s: want a base64 string of 32 bytes", field)
	}
	k := make([]byte, enc.DecodedLen(len(raw)-2))
	if n, err := enc.Decode(k, raw[1:len(raw)-1]); err != nil || n != 32 {
		clear(k)
		return nil, fmt.Errorf("%s: want a base64 string of 32 bytes", field)
	}
	return k[:32:32], nil
}

// marshal renders the file by hand into one preallocated buffer, so that the
// base64 of the keys exists in exactly one place the caller clears.
func (f *keyringFile) marshal() []byte {
	const keyLen = 44 // base64 of 32 bytes
	n := 128 + keyLen
	for _, mk := range f.MasterKeys {
		n += 64 + len(mk.Created) + keyLen
	}
	b := make([]byte, 0, n)
	b = append(b, "{\n  \"version\": "...)
	b = strconv.AppendInt(b, int64(f.Version), 10)
	b = append(b, ",\n  \"current\": "...)
	b = strconv.AppendInt(b, int64(f.Current), 10)
	b = append(b, ",\n  \"master_keys\": ["...)
	for i, mk := range f.MasterKeys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    {\"version\": "...)
		b = strconv.AppendInt(b, int64(mk.Version), 10)
		b = append(b, ", \"created\": "...)
		b = strconv.AppendQuote(b, mk.Created) // RFC 3339: plain ASCII, quotes like JSON
		b = append(b, ", \"key\": \""...)
		b = base64.StdEncoding.AppendEncode(b, mk.Key)
		b = append(b, "\"}"...)
	}
	b = append(b, "\n  ],\n  \"index_key\": \""...)
	b = base64.StdEncoding.AppendEncode(b, f.IndexKey)
	return append(b, "\"\n}\n"...)
}

// writeKeyringFile writes data to a temporary file beside path (mode 0600),
// syncs it, and moves it into place: replacing path, or only if path does not
// exist. The directory is synced so the new name survives a crash.
func writeKeyringFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("sealer: keyring %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		tmp.Close()
		os.Remove(tmpName) // after a link or a failure; a no-op after a rename
		if err != nil {
			err = fmt.Errorf("sealer: keyring %s: %w", path, err)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmpName, path)
	} else {
		// link fails if path exists, where rename would replace it.
		err = os.Link(tmpName, path)
		if errors.Is(err, fs.ErrExist) {
			return errors.New("already exists; refusing to overwrite it")
		}
		if err != nil { // no hard links here: check, then rename
			if _, serr := os.Lstat(path); serr == nil {
				return errors.New("already exists; refusing to overwrite it")
			}
			err = os.Rename(tmpName, path)
		}
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
