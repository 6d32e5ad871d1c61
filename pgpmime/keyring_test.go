package pgpmime

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// logLines parses the JSON log lines.
func logLines(t *testing.T, lb *logBuffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(lb.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// notUsed returns the reason logged for fingerprint fp ("" if none).
func notUsed(t *testing.T, lb *logBuffer, fp string) string {
	t.Helper()
	for _, m := range logLines(t, lb) {
		if m["msg"] == "openpgp: key not used" && m["fingerprint"] == fp {
			return m["reason"].(string)
		}
	}
	return ""
}

func TestLoadKeyringJudgesEveryKey(t *testing.T) {
	ks := testKeys(t)
	gk := testGPGKey(t)
	dir := t.TempDir()
	writeKeyDir(t, dir, ks.alice, ks.bob, ks.revoked, ks.expired, ks.subExpired, ks.subRevoked, ks.signOnly, ks.weak, ks.later)
	if err := os.WriteFile(filepath.Join(dir, "gina.asc"), gk.pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	logger, lb := newLogger()
	kr, err := LoadKeyring(dir, nil, time.Now(), logger)
	if err != nil {
		t.Fatal(err)
	}

	usable := []struct {
		addr string
		k    *testKey
		fp   string
	}{
		{"alice@example.org", ks.alice, ""},
		{"bob@example.org", ks.bob, ""}, // the user ID says Bob@Example.org
		{"lena@example.org", ks.later, ""},
		{"gina@example.org", nil, gk.fpr},
	}
	for _, u := range usable {
		fp := u.fp
		if u.k != nil {
			fp = u.k.fp
		}
		r, ok := kr.Lookup(u.addr)
		if !ok || r.Fingerprint() != fp {
			t.Errorf("Lookup(%s) = %v, %v; want %s", u.addr, r, ok, fp)
			continue
		}
		// The key used for encryption is a subkey, not the primary.
		if strings.HasSuffix(fp, r.EncryptionKeyID()) {
			t.Errorf("%s: encrypts to its primary key", u.addr)
		}
		if reason := notUsed(t, lb, fp); reason != "" {
			t.Errorf("%s logged as not used: %s", u.addr, reason)
		}
	}
	if got := kr.Len(); got != len(usable) {
		t.Errorf("Len() = %d, want %d", got, len(usable))
	}

	unusable := []struct {
		k      *testKey
		reason string
	}{
		{ks.revoked, "revoked: lost laptop"},
		{ks.expired, "expired at "},
		{ks.subExpired, "encryption subkey expired at "},
		{ks.subRevoked, "encryption subkey revoked"},
		{ks.signOnly, "no encryption-capable key"},
		{ks.weak, "encryption key of 1024 bits is too weak"},
	}
	for _, u := range unusable {
		if r, ok := kr.Lookup(u.k.email); ok {
			t.Errorf("Lookup(%s) = %v, want no key", u.k.email, r)
		}
		if got := notUsed(t, lb, u.k.fp); !strings.HasPrefix(got, u.reason) {
			t.Errorf("%s: logged reason %q, want %q…", u.k.email, got, u.reason)
		}
	}
	if strings.Contains(lb.String(), "README") {
		t.Error("a non-key file was read")
	}
}

func TestLookupNormalisesAddresses(t *testing.T) {
	ks := testKeys(t)
	kr, err := LoadKeyring(writeKeyFile(t, ks.alice.pub, ks.bob.pub), nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"alice@example.org", "  <Alice@EXAMPLE.org> ", "<alice@example.org>", "BOB@example.ORG"} {
		if _, ok := kr.Lookup(a); !ok {
			t.Errorf("Lookup(%q) found nothing", a)
		}
	}
	for _, a := range []string{"alice+tag@example.org", "alice@example.org.", "Alice <alice@example.org>", "", "alice"} {
		if r, ok := kr.Lookup(a); ok {
			t.Errorf("Lookup(%q) = %v, want nothing", a, r)
		}
	}
	var nilKR *Keyring
	if _, ok := nilKR.Lookup("alice@example.org"); ok || nilKR.Len() != 0 {
		t.Error("a nil keyring holds keys")
	}
}

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.ORG":          "alice@example.org",
		" <Bob+Tag@Example.org> ":    "bob+tag@example.org",
		"<>":                         "",
		"\tcarol@example.org\r\n":    "carol@example.org",
		"< dave@example.org >":       "dave@example.org",
		"ÉLODIE@exemple.fr":          "élodie@exemple.fr",
		"\"quoted local\"@example.o": "\"quoted local\"@example.o",
	} {
		if got := normalizeAddress(in); got != want {
			t.Errorf("normalizeAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeKeyFile(t *testing.T, pubs ...[]byte) string {
	t.Helper()
	var all []byte
	for _, p := range pubs {
		all = append(all, "Some text between blocks is fine.\n"...)
		all = append(all, p...)
	}
	path := filepath.Join(t.TempDir(), "keys.asc")
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExplicitMapWins(t *testing.T) {
	ks := testKeys(t)
	path := writeKeyFile(t, ks.alice.pub, ks.bob.pub, ks.revoked.pub)
	spaced := func(fp string) string { // "abcd ef01 …", lower case
		var b strings.Builder
		for i := 0; i < len(fp); i += 4 {
			b.WriteString(strings.ToLower(fp[i:i+4]) + " ")
		}
		return b.String()
	}
	explicit := map[string]string{
		"alice@example.org":  ks.bob.fp,                                            // overrides alice's own user ID
		"<Ops@Example.org>":  spaced(ks.alice.fp),                                  // an address no user ID names
		"rita@example.org":   ks.revoked.fp,                                        // an unusable key: no key at all
		"nobody@example.org": strings.Repeat("AB", 20),                             // not in the keyring
		"bob@example.org":    "0x" + ks.bob.fp,                                     // the same key, by its 0x form
		"sub@example.org":    fingerprintHex(ks.alice.entity.Subkeys[0].PublicKey), // a subkey's fingerprint
	}
	logger, lb := newLogger()
	kr, err := LoadKeyring(path, explicit, time.Now(), logger)
	if err != nil {
		t.Fatal(err)
	}
	for addr, fp := range map[string]string{
		"alice@example.org": ks.bob.fp,
		"ops@example.org":   ks.alice.fp,
		"bob@example.org":   ks.bob.fp,
		"sub@example.org":   ks.alice.fp,
	} {
		if r, ok := kr.Lookup(addr); !ok || r.Fingerprint() != fp {
			t.Errorf("Lookup(%s) = %v, %v; want %s", addr, r, ok, fp)
		}
	}
	for _, addr := range []string{"rita@example.org", "nobody@example.org"} {
		if r, ok := kr.Lookup(addr); ok {
			t.Errorf("Lookup(%s) = %v, want none", addr, r)
		}
	}
	logs := lb.String()
	for _, want := range []string{"explicit key not used", "explicit key not in keyring"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	for name, bad := range map[string]map[string]string{
		"short fingerprint": {"alice@example.org": "ABCDEF"},
		"not hex":           {"alice@example.org": strings.Repeat("ZZ", 20)},
		"not an address":    {"alice": ks.alice.fp},
		"empty address":     {"": ks.alice.fp},
		"conflict":          {"Ops@example.org": ks.alice.fp, "ops@example.org": ks.bob.fp},
	} {
		if _, err := LoadKeyring(path, bad, time.Now(), nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestLoadKeyringBadFiles: an unreadable key file is an error naming the
// file, never a panic.
func TestLoadKeyringBadFiles(t *testing.T) {
	ks := testKeys(t)
	var bin bytes.Buffer
	if err := ks.alice.entity.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	// A flipped character in the key material: the self-signatures no
	// longer verify.
	corrupt := bytes.Clone(ks.alice.pub)
	lines := regexp.MustCompile(`(?m)^[A-Za-z0-9+/]{64}$`).FindAllIndex(corrupt, -1)
	if len(lines) < 2 {
		t.Fatal("no armour line to corrupt")
	}
	at := lines[1][0] + 10
	if corrupt[at] == 'A' {
		corrupt[at] = 'B'
	} else {
		corrupt[at] = 'A'
	}
	cases := map[string][]byte{
		"garbage.asc":   []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!! not base64 !!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"),
		"truncated.gpg": bin.Bytes()[:bin.Len()/2],
		"noise.gpg":     bytes.Repeat([]byte{0xff, 0x00, 0x13}, 100),
		"empty.asc":     nil,
		"secret.asc":    ks.alice.sec,
		"message.asc":   []byte("-----BEGIN PGP MESSAGE-----\n\nwcBMA0Tl\n-----END PGP MESSAGE-----\n"),
		"corrupt.asc":   corrupt,
		"text.asc":      []byte("just some text\n"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeKeyDir(t, dir, ks.alice)
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			kr, err := LoadKeyring(dir, nil, time.Now(), nil)
			if err == nil {
				t.Fatalf("loaded %d keys, want an error", kr.Len())
			}
			t.Log(err)
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
		})
	}
	t.Run("missing path", func(t *testing.T) {
		if _, err := LoadKeyring(filepath.Join(t.TempDir(), "nope"), nil, time.Now(), nil); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestLoadKeyringBinaryAndMultiBlockFiles(t *testing.T) {
	ks := testKeys(t)
	dir := t.TempDir()
	var bin bytes.Buffer
	ks.bob.entity.Serialize(&bin)
	ks.later.entity.Serialize(&bin) // two keys in one binary file
	if err := os.WriteFile(filepath.Join(dir, "bob-and-lena.GPG"), bin.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// One armour block holding two keys, and a second block in the same file.
	var two bytes.Buffer
	aw, _ := armor.Encode(&two, "PGP PUBLIC KEY BLOCK", nil)
	ks.alice.entity.Serialize(aw)
	ks.revoked.entity.Serialize(aw)
	aw.Close()
	two.WriteString("\n\n")
	two.Write(ks.bob.pub) // a duplicate of a key in the binary file
	if err := os.WriteFile(filepath.Join(dir, "more.asc"), two.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	logger, lb := newLogger()
	kr, err := LoadKeyring(dir, nil, time.Now(), logger)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 3 {
		t.Errorf("Len() = %d, want 3 (alice, bob, lena)", kr.Len())
	}
	for _, a := range []string{"alice@example.org", "bob@example.org", "lena@example.org"} {
		if _, ok := kr.Lookup(a); !ok {
			t.Errorf("no key for %s", a)
		}
	}
	if !strings.Contains(lb.String(), "duplicate key ignored") {
		t.Error("duplicate not logged")
	}
}

// TestNewestKeyWinsAnAddress: two usable keys claim one address.
func TestNewestKeyWinsAnAddress(t *testing.T) {
	older := newTestKey(t, "Olga", "olga@example.org", x25519Config(keyTime.Add(-time.Hour)), nil)
	newer := newTestKey(t, "Olga", "olga@example.org", x25519Config(keyTime), nil)
	for _, order := range [][][]byte{{older.pub, newer.pub}, {newer.pub, older.pub}} {
		kr, err := LoadKeyring(writeKeyFile(t, order...), nil, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := kr.Lookup("olga@example.org"); !ok || r.Fingerprint() != newer.fp {
			t.Errorf("Lookup = %v, want the newer key %s", r, newer.fp)
		}
	}
}

// TestLookupAfterExpiry: a key that expires while the keyring is loaded
// stops being returned, and that is logged once.
func TestLookupAfterExpiry(t *testing.T) {
	ks := testKeys(t)
	logger, lb := newLogger()
	kr, err := LoadKeyring(writeKeyFile(t, ks.later.pub), nil, time.Now(), logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := kr.Lookup("lena@example.org"); !ok {
		t.Fatal("no key before expiry")
	}
	kr.clock = fixedClock(time.Now().Add(3 * time.Hour))
	for i := 0; i < 3; i++ {
		if _, ok := kr.Lookup("lena@example.org"); ok {
			t.Fatal("expired key returned")
		}
	}
	if n := strings.Count(lb.String(), "key no longer usable"); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
}

// TestJudgedAtNow: the same files judged at other times.
func TestJudgedAtNow(t *testing.T) {
	ks := testKeys(t)
	path := writeKeyFile(t, ks.expired.pub, ks.alice.pub)
	// Ed's key was valid for its first hour, 48 hours ago.
	kr, err := LoadKeyring(path, nil, time.Now().Add(-48*time.Hour+30*time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 1 {
		t.Errorf("judged 47.5 hours ago: %d usable keys, want 1 (ed; alice did not exist yet)", kr.Len())
	}
	logger, lb := newLogger()
	if _, err := LoadKeyring(path, nil, time.Now().Add(-48*time.Hour-time.Hour), logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lb.String(), "created in the future") {
		t.Errorf("a key judged before its creation was not logged as such:\n%s", lb.String())
	}
}
