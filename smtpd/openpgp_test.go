package smtpd

import (
	"bytes"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gopgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/mailvault/mailvaultd/pgpmime"
)

// pgpFixture is a keyring file holding the public key of alice@example.test
// (whose secret key the test keeps) and nothing for anyone else.
type pgpFixture struct {
	secret gopgp.EntityList
	kr     *pgpmime.Keyring
}

func newPGPFixture(t *testing.T) *pgpFixture {
	t.Helper()
	ent, err := gopgp.NewEntity("Alice", "", "alice@example.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, gopgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ent.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(t.TempDir(), "keys.asc")
	if err := os.WriteFile(path, pub.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := pgpmime.LoadKeyring(path, nil, time.Now(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &pgpFixture{secret: gopgp.EntityList{ent}, kr: kr}
}

// decryptPGPMIME checks that msg is RFC 3156 PGP/MIME and returns the
// decrypted entity.
func (f *pgpFixture) decryptPGPMIME(t *testing.T, msg []byte) []byte {
	t.Helper()
	hdrEnd := bytes.Index(msg, []byte("\r\n\r\n"))
	if hdrEnd < 0 {
		t.Fatal("forwarded message has no header end")
	}
	var ct string
	for _, line := range strings.Split(string(msg[:hdrEnd]), "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "content-type:") || (ct != "" && (line[0] == ' ' || line[0] == '\t')) {
			ct += strings.TrimSpace(strings.TrimPrefix(line, line[:strings.Index(line, ":")+1]))
		}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Fatalf("forwarded Content-Type %q (%v), want multipart/encrypted; protocol=application/pgp-encrypted", ct, err)
	}
	mr := multipart.NewReader(bytes.NewReader(msg[hdrEnd+4:]), params["boundary"])
	ver, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	vb, _ := io.ReadAll(ver)
	if ver.Header.Get("Content-Type") != "application/pgp-encrypted" || !strings.Contains(string(vb), "Version: 1") {
		t.Fatalf("version part %q %q", ver.Header.Get("Content-Type"), vb)
	}
	data, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	block, err := armor.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	md, err := gopgp.ReadMessage(block.Body, f.secret, nil, nil)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	plain, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func newPGPEnv(t *testing.T, f *pgpFixture, policy pgpmime.Policy) *testEnv {
	return newEnv(t, envOpts{openpgp: &OpenPGP{Policy: policy, Keys: func() *pgpmime.Keyring { return f.kr }}})
}

func TestOpenPGPForwarding(t *testing.T) {
	f := newPGPFixture(t)
	msg := crlf("From: bob@example.test\nTo: alice@example.test\nSubject: the secret plan\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n.dot line\nbody MARKER-pgp\n" +
		"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--b--\n")

	t.Run("opportunistic with mixed recipients", func(t *testing.T) {
		e := newPGPEnv(t, f, pgpmime.PolicyOpportunistic)
		res := e.send(t, "bob@example.test", []string{"alice@example.test", "carol@example.test"}, msg, nil)
		if res.code != 452 {
			t.Fatalf("second group's recipient: reply %d %q, want 452 (send separately)", res.code, res.text)
		}
		res = e.send(t, "bob@example.test", []string{"alice@example.test"}, msg, nil)
		if res.code != 250 {
			t.Fatalf("encrypted group: %d %q", res.code, res.text)
		}
		res2 := e.send(t, "bob@example.test", []string{"carol@example.test"}, msg, nil)
		if res2.code != 250 {
			t.Fatalf("plain group: %d %q", res2.code, res2.text)
		}
		got := e.hop.messages()
		if len(got) != 2 {
			t.Fatalf("next hop got %d transactions, want one per group", len(got))
		}
		if strings.Join(got[0].to, ",") != "alice@example.test" || strings.Join(got[1].to, ",") != "carol@example.test" {
			t.Fatalf("groups %v and %v", got[0].to, got[1].to)
		}
		if bytes.Contains(got[0].data, []byte("MARKER-pgp")) || bytes.Contains(got[0].data, []byte("the secret plan")) {
			t.Error("the encrypted copy shows the body or the subject in the clear")
		}
		if plain := f.decryptPGPMIME(t, got[0].data); !bytes.Equal(plain, msg) {
			t.Errorf("decrypted entity differs from the original:\n%q\n%q", plain, msg)
		}
		if !bytes.Equal(got[1].data, msg) {
			t.Error("the recipient without a key did not get the original")
		}
		if a := e.open(t, res.id()); !bytes.Equal(a, msg) {
			t.Error("the archive does not hold the original of the encrypted delivery")
		}
	})
	t.Run("required refuses recipients without a key", func(t *testing.T) {
		e := newPGPEnv(t, f, pgpmime.PolicyRequired)
		res := e.send(t, "bob@example.test", []string{"carol@example.test"}, msg, nil)
		if res.code != 550 || !strings.HasPrefix(res.err.Error(), "SMTP error 550") {
			t.Fatalf("reply %d %q, want 550 5.7.1", res.code, res.text)
		}
		res = e.send(t, "bob@example.test", []string{"alice@example.test"}, msg, nil)
		if res.code != 250 {
			t.Fatalf("recipient with a key: %d %q", res.code, res.text)
		}
		for _, m := range e.hop.messages() {
			if bytes.Contains(m.data, []byte("MARKER-pgp")) {
				t.Error("mail went out in the clear under the required policy")
			}
		}
	})
	t.Run("already encrypted passes unchanged", func(t *testing.T) {
		e := newPGPEnv(t, f, pgpmime.PolicyRequired)
		enc := crlf("From: bob@example.test\nTo: alice@example.test\nMIME-Version: 1.0\n" +
			"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"z\"\n\n" +
			"--z\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--z\nContent-Type: application/octet-stream\n\n" +
			"-----BEGIN PGP MESSAGE-----\n\nhQEMA...\n-----END PGP MESSAGE-----\n--z--\n")
		res := e.send(t, "bob@example.test", []string{"alice@example.test"}, enc, nil)
		if res.code != 250 {
			t.Fatalf("%d %q", res.code, res.text)
		}
		if got := e.hop.messages(); len(got) != 1 || !bytes.Equal(got[0].data, enc) {
			t.Error("already-encrypted mail was changed on the way")
		}
	})
	t.Run("off forwards the original", func(t *testing.T) {
		e := newPGPEnv(t, f, pgpmime.PolicyOff)
		res := e.send(t, "bob@example.test", []string{"alice@example.test", "carol@example.test"}, msg, nil)
		if res.code != 250 {
			t.Fatalf("%d %q", res.code, res.text)
		}
		if got := e.hop.messages(); len(got) != 1 || !bytes.Equal(got[0].data, msg) {
			t.Error("policy off changed the message")
		}
	})
}
