package pgpmime

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gopgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const (
	// maxKeyFileBytes bounds one key file. Public keys are a few KiB; a
	// keyring file of thousands of keys still fits.
	maxKeyFileBytes = 32 << 20
	// maxKeyFiles bounds the files read from a keyring directory.
	maxKeyFiles = 10000
	// minRSABits is the smallest RSA (or ElGamal) encryption key used.
	minRSABits = 2048
)

// Recipient is one usable public key. Several addresses may share it.
type Recipient struct {
	entity      *gopgp.Entity
	fingerprint string // primary key, upper-case hex
	encKeyID    string // the encryption (sub)key chosen at load, upper-case hex
	userID      string // the primary user ID, for logs
	expires     time.Time
	staleLogged atomic.Bool
}

// Fingerprint is the primary key's fingerprint, upper-case hex.
func (r *Recipient) Fingerprint() string { return r.fingerprint }

// EncryptionKeyID is the key ID (upper-case hex) of the (sub)key messages
// are encrypted to, as chosen when the keyring was loaded.
func (r *Recipient) EncryptionKeyID() string { return r.encKeyID }

// UserID is the key's primary user ID.
func (r *Recipient) UserID() string { return r.userID }

// Expires is when the key or its encryption subkey expires (zero: never).
func (r *Recipient) Expires() time.Time { return r.expires }

func (r *Recipient) String() string { return r.fingerprint }

// Keyring is a loaded set of usable recipient keys, indexed by address. It is
// immutable and safe for concurrent use; to reload, load a new one and swap.
type Keyring struct {
	byAddr map[string]*Recipient // normalised address -> key
	keys   []*Recipient          // every usable key, sorted by fingerprint
	logger *slog.Logger
	clock  func() time.Time // Lookup's clock (tests replace it)
}

// LoadKeyring reads the public keys at path: one file of keys, or a
// directory whose *.asc and *.gpg files (not recursive) hold them, ASCII
// armoured or binary. Every key is judged at now: a revoked key, an expired
// key, a key without a usable encryption (sub)key or with a weak one is not
// used, and each is logged with its fingerprint and the reason.
//
// Keys are found by the e-mail addresses of their valid user IDs; when
// several keys claim an address the most recently created one is used. The
// explicit map (normalised address -> fingerprint hex, of the primary key or
// of a subkey) wins over user IDs: an address in it gets exactly that key, or
// none if the key is missing or unusable.
//
// A file that cannot be read or holds no readable key, a private key, or a
// malformed explicit entry is an error that names the file or the address.
// A nil logger discards.
func LoadKeyring(path string, explicit map[string]string, now time.Time, logger *slog.Logger) (*Keyring, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	files, err := keyFiles(path)
	if err != nil {
		return nil, err
	}

	type loaded struct {
		e    *gopgp.Entity
		file string
	}
	var all []loaded
	for _, f := range files {
		es, skipped, err := readKeyFile(f)
		if err != nil {
			return nil, err
		}
		for _, serr := range skipped {
			logger.Warn("openpgp: key not used", "file", f, "reason", "unreadable: "+serr.Error())
		}
		for _, e := range es {
			all = append(all, loaded{e, f})
		}
	}

	k := &Keyring{byAddr: make(map[string]*Recipient), logger: logger, clock: time.Now}
	byFP := make(map[string]*Recipient)     // primary and subkey fingerprints of usable keys
	unusable := make(map[string]string)     // fingerprint -> reason, for explicit entries
	claims := make(map[string][]*Recipient) // address -> keys whose user IDs name it
	notUsed := 0
	for _, l := range all {
		fp := fingerprintHex(l.e.PrimaryKey)
		if _, dup := byFP[fp]; dup {
			logger.Info("openpgp: duplicate key ignored", "fingerprint", fp, "file", l.file)
			continue
		}
		if _, dup := unusable[fp]; dup {
			continue
		}
		r, reason := judge(l.e, now)
		if reason != "" {
			logger.Warn("openpgp: key not used", "fingerprint", fp, "user_id", primaryUserID(l.e), "file", l.file, "reason", reason)
			unusable[fp] = reason
			notUsed++
			for _, sk := range l.e.Subkeys {
				unusable[fingerprintHex(sk.PublicKey)] = reason
			}
			continue
		}
		k.keys = append(k.keys, r)
		byFP[fp] = r
		for _, sk := range l.e.Subkeys {
			byFP[fingerprintHex(sk.PublicKey)] = r
		}
		for _, addr := range identityAddresses(l.e, now) {
			claims[addr] = append(claims[addr], r)
		}
	}
	slices.SortFunc(k.keys, func(a, b *Recipient) int { return strings.Compare(a.fingerprint, b.fingerprint) })

	for addr, rs := range claims {
		slices.SortFunc(rs, func(a, b *Recipient) int {
			// Newest primary key first; the fingerprint breaks ties.
			if c := b.entity.PrimaryKey.CreationTime.Compare(a.entity.PrimaryKey.CreationTime); c != 0 {
				return c
			}
			return cmp.Compare(a.fingerprint, b.fingerprint)
		})
		if len(rs) > 1 {
			logger.Info("openpgp: several keys claim an address; using the newest", "address", addr, "fingerprint", rs[0].fingerprint, "keys", len(rs))
		}
		k.byAddr[addr] = rs[0]
	}

	// Explicit entries, validated first (in a fixed order, so that the same
	// config always gives the same error), then applied.
	pinned := make(map[string]string) // normalised address -> fingerprint
	for _, addr := range slices.Sorted(maps.Keys(explicit)) {
		na := normalizeAddress(addr)
		if !plausibleAddress(na) {
			return nil, fmt.Errorf("openpgp: explicit key for %q: not an e-mail address", addr)
		}
		nfp, err := normalizeFingerprint(explicit[addr])
		if err != nil {
			return nil, fmt.Errorf("openpgp: explicit key for %s: %w", na, err)
		}
		if prev, ok := pinned[na]; ok && prev != nfp {
			return nil, fmt.Errorf("openpgp: explicit keys for %s: two different fingerprints", na)
		}
		pinned[na] = nfp
	}
	for _, na := range slices.Sorted(maps.Keys(pinned)) {
		nfp := pinned[na]
		if r, ok := byFP[nfp]; ok {
			k.byAddr[na] = r
			continue
		}
		delete(k.byAddr, na) // explicit wins: no fallback to user IDs
		if reason, ok := unusable[nfp]; ok {
			logger.Warn("openpgp: explicit key not used", "address", na, "fingerprint", nfp, "reason", reason)
		} else {
			logger.Warn("openpgp: explicit key not in keyring", "address", na, "fingerprint", nfp)
		}
	}

	logger.Info("openpgp: keyring loaded", "path", path, "files", len(files), "keys", len(k.keys),
		"not_used", notUsed, "addresses", len(k.byAddr))
	return k, nil
}

// Lookup returns the key for addr (normalised first), if there is one and it
// is still usable now: a key that expired since the keyring was loaded is no
// longer returned (logged once).
func (k *Keyring) Lookup(addr string) (*Recipient, bool) {
	if k == nil {
		return nil, false
	}
	r, ok := k.byAddr[normalizeAddress(addr)]
	if !ok {
		return nil, false
	}
	if _, ok := r.entity.EncryptionKey(k.clock()); !ok {
		if !r.staleLogged.Swap(true) {
			k.logger.Warn("openpgp: key no longer usable; reload the keyring", "fingerprint", r.fingerprint, "expires", r.expires)
		}
		return nil, false
	}
	return r, true
}

// Len is the number of usable keys.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

// Addresses is the number of addresses that have a key.
func (k *Keyring) Addresses() int {
	if k == nil {
		return 0
	}
	return len(k.byAddr)
}

// keyFiles lists the files that path names.
func keyFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("openpgp: keyring: %w", err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("openpgp: keyring: %w", err)
	}
	var files []string
	for _, de := range ents {
		ext := strings.ToLower(filepath.Ext(de.Name()))
		if ext != ".asc" && ext != ".gpg" || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		p := filepath.Join(path, de.Name())
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			if err != nil {
				return nil, fmt.Errorf("openpgp: keyring: %w", err)
			}
			continue
		}
		files = append(files, p)
		if len(files) > maxKeyFiles {
			return nil, fmt.Errorf("openpgp: keyring %s: more than %d key files", path, maxKeyFiles)
		}
	}
	return files, nil // ReadDir sorts by name
}

// readKeyFile reads every key in one file. skipped lists keys that could not
// be parsed while others in the file could.
func readKeyFile(path string) (es []*gopgp.Entity, skipped []error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("openpgp: keyring: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("openpgp: keyring %s: %w", path, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, nil, fmt.Errorf("openpgp: keyring %s: larger than %d bytes", path, maxKeyFileBytes)
	}
	es, skipped, err = parseKeys(data)
	if err != nil {
		return nil, nil, fmt.Errorf("openpgp: keyring %s: %w", path, err)
	}
	return es, skipped, nil
}

var armorBegin = []byte("-----BEGIN PGP ")

// parseKeys parses armoured blocks (any number, with text between them) or,
// if there are none, binary packets. It never panics.
func parseKeys(data []byte) (es []*gopgp.Entity, skipped []error, err error) {
	defer func() {
		if p := recover(); p != nil {
			es, skipped, err = nil, nil, fmt.Errorf("malformed key data (%v)", p)
		}
	}()
	starts := armorStarts(data)
	if len(starts) == 0 {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, nil, errors.New("no OpenPGP key found")
		}
		es, skipped, err = readEntities(bytes.NewReader(data))
	} else {
		for _, s := range starts {
			block, err := armor.Decode(bytes.NewReader(data[s:]))
			if err != nil {
				return nil, nil, fmt.Errorf("armour at byte %d: %w", s, err)
			}
			switch block.Type {
			case gopgp.PublicKeyType:
			case gopgp.PrivateKeyType:
				return nil, nil, errors.New("holds a private key block; export public keys only (gpg --armor --export)")
			default:
				return nil, nil, fmt.Errorf("armour block %q at byte %d is not a public key block", block.Type, s)
			}
			bes, bskipped, err := readEntities(block.Body)
			if err != nil {
				return nil, nil, fmt.Errorf("armour block at byte %d: %w", s, err)
			}
			es = append(es, bes...)
			skipped = append(skipped, bskipped...)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range es {
		if e.PrivateKey != nil {
			return nil, nil, errors.New("holds a private key; export public keys only (gpg --export)")
		}
	}
	if len(es) == 0 {
		if len(skipped) > 0 {
			return nil, nil, fmt.Errorf("no readable key: %w", skipped[0])
		}
		return nil, nil, errors.New("no OpenPGP key found")
	}
	return es, skipped, nil
}

// armorStarts returns the offsets of armour header lines.
func armorStarts(data []byte) []int {
	var starts []int
	for off := 0; ; {
		i := bytes.Index(data[off:], armorBegin)
		if i < 0 {
			return starts
		}
		at := off + i
		if at == 0 || data[at-1] == '\n' {
			starts = append(starts, at)
		}
		off = at + len(armorBegin)
	}
}

// readEntities reads a sequence of keys like gopgp.ReadKeyRing, but reports
// the keys it had to skip instead of dropping them silently.
func readEntities(r io.Reader) (es []*gopgp.Entity, skipped []error, err error) {
	packets := packet.NewReader(r)
	for {
		e, err := gopgp.ReadEntity(packets)
		if err == io.EOF {
			return es, skipped, nil
		}
		if err != nil {
			var ue pgperrors.UnsupportedError
			var se pgperrors.StructuralError
			if !errors.As(err, &ue) && !errors.As(err, &se) {
				return nil, nil, err
			}
			skipped = append(skipped, err)
			if err := skipToNextKey(packets); err == io.EOF {
				return es, skipped, nil
			} else if err != nil {
				return nil, nil, err
			}
			continue
		}
		es = append(es, e)
	}
}

// skipToNextKey reads packets up to the next primary key and unreads it.
func skipToNextKey(packets *packet.Reader) error {
	for {
		p, err := packets.Next()
		if err != nil {
			var ue pgperrors.UnsupportedError
			if errors.As(err, &ue) {
				continue
			}
			return err
		}
		switch pk := p.(type) {
		case *packet.PublicKey:
			if !pk.IsSubkey {
				packets.Unread(p)
				return nil
			}
		case *packet.PrivateKey:
			if !pk.IsSubkey {
				packets.Unread(p)
				return nil
			}
		}
	}
}

// judge decides whether e can be encrypted to at now; if not, it says why.
func judge(e *gopgp.Entity, now time.Time) (*Recipient, string) {
	fmtTime := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	if e.Revoked(now) {
		return nil, "revoked" + revocationText(e.Revocations)
	}
	self, ident := e.PrimarySelfSignature()
	if self == nil {
		return nil, "no valid self-signature"
	}
	if e.PrimaryKey.CreationTime.After(now) {
		return nil, "created in the future (" + fmtTime(e.PrimaryKey.CreationTime) + ")"
	}
	if e.PrimaryKey.KeyExpired(self, now) {
		return nil, "expired at " + fmtTime(keyExpiry(e.PrimaryKey, self))
	}
	if self.SigExpired(now) {
		return nil, "self-signature expired"
	}
	if ident != nil && ident.Revoked(now) {
		return nil, "primary user ID revoked"
	}

	var capable, revoked, expired int
	var lastExpiry time.Time
	for _, sk := range e.Subkeys {
		if !(sk.Sig.FlagsValid && sk.Sig.FlagEncryptCommunications && sk.PublicKey.PubKeyAlgo.CanEncrypt()) {
			continue
		}
		capable++
		switch {
		case sk.Revoked(now):
			revoked++
		case sk.PublicKey.KeyExpired(sk.Sig, now) || sk.Sig.SigExpired(now):
			expired++
			if x := keyExpiry(sk.PublicKey, sk.Sig); x.After(lastExpiry) {
				lastExpiry = x
			}
		}
	}
	if self.FlagsValid && self.FlagEncryptCommunications && e.PrimaryKey.PubKeyAlgo.CanEncrypt() {
		capable++
	}

	key, ok := e.EncryptionKey(now)
	if !ok {
		switch {
		case capable == 0:
			return nil, "no encryption-capable key (sign-only)"
		case revoked == capable:
			return nil, "encryption subkey revoked"
		case expired == capable && !lastExpiry.IsZero():
			return nil, "encryption subkey expired at " + fmtTime(lastExpiry)
		case revoked+expired == capable:
			return nil, "every encryption subkey is revoked or expired"
		}
		return nil, "no usable encryption key"
	}
	switch key.PublicKey.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoElGamal:
		if bits, err := key.PublicKey.BitLength(); err != nil || bits < minRSABits {
			return nil, fmt.Sprintf("encryption key of %d bits is too weak (minimum %d)", bits, minRSABits)
		}
	}

	expires := keyExpiry(e.PrimaryKey, self)
	if x := keyExpiry(key.PublicKey, key.SelfSignature); !x.IsZero() && (expires.IsZero() || x.Before(expires)) {
		expires = x
	}
	return &Recipient{
		entity:      e,
		fingerprint: fingerprintHex(e.PrimaryKey),
		encKeyID:    fmt.Sprintf("%016X", key.PublicKey.KeyId),
		userID:      primaryUserID(e),
		expires:     expires,
	}, ""
}

// keyExpiry is when pk expires according to its self-signature (zero: never).
func keyExpiry(pk *packet.PublicKey, sig *packet.Signature) time.Time {
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}
	}
	return pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
}

func revocationText(revs []*packet.Signature) string {
	for _, r := range revs {
		if r.RevocationReasonText != "" {
			return ": " + strings.ToValidUTF8(r.RevocationReasonText, "?")
		}
	}
	return ""
}

// identityAddresses returns the normalised addresses of e's user IDs that
// are neither revoked nor expired at now, sorted.
func identityAddresses(e *gopgp.Entity, now time.Time) []string {
	var addrs []string
	for _, id := range e.Identities {
		if id.SelfSignature == nil || id.SelfSignature.SigExpired(now) || id.Revoked(now) {
			continue
		}
		if a := normalizeAddress(id.UserId.Email); plausibleAddress(a) {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

func primaryUserID(e *gopgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return strings.ToValidUTF8(id.Name, "?")
	}
	return ""
}

func fingerprintHex(pk *packet.PublicKey) string {
	return strings.ToUpper(hex.EncodeToString(pk.Fingerprint))
}

// normalizeFingerprint accepts upper or lower case hex with optional spaces
// and 0x prefix, of a v4 (40 digits) or v6 (64 digits) fingerprint.
func normalizeFingerprint(s string) (string, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	if _, err := hex.DecodeString(t); err != nil || (len(t) != 40 && len(t) != 64) {
		return "", fmt.Errorf("fingerprint %q: want 40 or 64 hex digits", s)
	}
	return strings.ToUpper(t), nil
}

// normalizeAddress is the form addresses are compared in; it agrees with
// archive.NormalizeAddress: surrounding space and angle brackets removed, the
// whole address lower-cased, a +tag kept.
func normalizeAddress(addr string) string {
	a := strings.TrimSpace(addr)
	if len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>' {
		a = strings.TrimSpace(a[1 : len(a)-1])
	}
	return strings.ToLower(a)
}

// plausibleAddress reports whether a normalised string looks like an
// address: one local part, one domain, no space or control characters.
func plausibleAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 320 {
		return false
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}
