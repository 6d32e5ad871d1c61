package pgpmime

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gopgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// testKey is a key generated for the tests, with its armoured public and
// secret parts.
type testKey struct {
	name   string
	email  string
	entity *gopgp.Entity
	pub    []byte // armoured public key
	sec    []byte // armoured secret key (for gpg --import)
	fp     string
}

// keyTime is the creation time of the test keys: an hour ago, so that a
// keyring judged at time.Now() never sees a key "created in the future".
var keyTime = time.Now().Add(-time.Hour).Truncate(time.Second)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func x25519Config(at time.Time) *packet.Config {
	return &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519, Time: fixedClock(at)}
}

func rsaConfig(bits int, at time.Time) *packet.Config {
	return &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: bits, Time: fixedClock(at)}
}

func newTestKey(t testing.TB, name, email string, cfg *packet.Config, mutate func(*gopgp.Entity) error) *testKey {
	t.Helper()
	e, err := gopgp.NewEntity(name, "", email, cfg)
	if err != nil {
		t.Fatalf("generate %s: %v", email, err)
	}
	if mutate != nil {
		if err := mutate(e); err != nil {
			t.Fatalf("mutate %s: %v", email, err)
		}
	}
	k := &testKey{name: name, email: email, entity: e, fp: fingerprintHex(e.PrimaryKey)}
	k.pub = armorTB(t, gopgp.PublicKeyType, e.Serialize)
	k.sec = armorTB(t, gopgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivateWithoutSigning(w, nil) })
	return k
}

func armorTB(t testing.TB, typ string, ser func(io.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ser(aw); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// keySet is every kind of key the tests need.
type keySet struct {
	alice      *testKey // ed25519 primary, cv25519 encryption subkey
	bob        *testKey // RSA 2048 primary, RSA 2048 encryption subkey
	revoked    *testKey
	expired    *testKey // primary expired
	subExpired *testKey // primary valid, only encryption subkey expired
	subRevoked *testKey // primary valid, only encryption subkey revoked
	signOnly   *testKey
	weak       *testKey // RSA 1024
	later      *testKey // expires two hours from now
}

var (
	keysOnce sync.Once
	keys     *keySet
	keysErr  string
)

// testKeys generates the key set once per test binary.
func testKeys(t testing.TB) *keySet {
	t.Helper()
	keysOnce.Do(func() {
		ft := &fatalRecorder{TB: t}
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
			keysErr = ft.msg
		}()
		keys = generateKeys(ft)
	})
	if keysErr != "" {
		t.Fatal(keysErr)
	}
	return keys
}

func generateKeys(t testing.TB) *keySet {
	past := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	ks := &keySet{}
	ks.alice = newTestKey(t, "Alice", "alice@example.org", x25519Config(keyTime), nil)
	ks.bob = newTestKey(t, "Bob", "Bob@Example.org", rsaConfig(2048, keyTime), nil)
	ks.revoked = newTestKey(t, "Rita Revoked", "rita@example.org", x25519Config(keyTime), func(e *gopgp.Entity) error {
		return e.RevokeKey(packet.KeyCompromised, "lost laptop", x25519Config(keyTime))
	})
	expCfg := x25519Config(past)
	expCfg.KeyLifetimeSecs = 3600
	ks.expired = newTestKey(t, "Ed Expired", "ed@example.org", expCfg, nil)
	ks.subExpired = newTestKey(t, "Sue Subexpired", "sue@example.org", x25519Config(past), func(e *gopgp.Entity) error {
		e.Subkeys = nil
		cfg := x25519Config(past)
		cfg.KeyLifetimeSecs = 3600
		return e.AddEncryptionSubkey(cfg)
	})
	ks.subRevoked = newTestKey(t, "Sam Subrevoked", "sam@example.org", x25519Config(keyTime), func(e *gopgp.Entity) error {
		return e.RevokeSubkey(&e.Subkeys[0], packet.KeySuperseded, "", x25519Config(keyTime))
	})
	ks.signOnly = newTestKey(t, "Sid Signonly", "sid@example.org", x25519Config(keyTime), func(e *gopgp.Entity) error {
		e.Subkeys = nil
		return nil
	})
	ks.weak = newTestKey(t, "Walt Weak", "walt@example.org", rsaConfig(1024, keyTime), nil)
	laterCfg := x25519Config(keyTime)
	laterCfg.KeyLifetimeSecs = uint32((3 * time.Hour).Seconds()) // created an hour ago: two hours left
	ks.later = newTestKey(t, "Lena Later", "lena@example.org", laterCfg, nil)
	return ks
}

var errFatal = fmt.Errorf("fatal")

// fatalRecorder lets a sync.Once body fail without leaving keys half made
// for the tests that run after it.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(errFatal)
}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}

// writeKeyDir writes each key's armoured public part to dir/<local>.asc.
func writeKeyDir(t testing.TB, dir string, ks ...*testKey) {
	t.Helper()
	for _, k := range ks {
		local, _, _ := bytes.Cut([]byte(k.email), []byte("@"))
		if err := os.WriteFile(filepath.Join(dir, string(bytes.ToLower(local))+".asc"), k.pub, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// logBuffer is a JSON slog handler's output, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o644) }
