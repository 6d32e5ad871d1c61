package pgpmime

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	gopgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

var update = flag.Bool("update", false, "rewrite golden files")

// recipientsOf loads keys into a keyring and returns their recipients in
// the given order.
func recipientsOf(t testing.TB, pubs ...[]byte) []*Recipient {
	t.Helper()
	dir := t.TempDir()
	for i, p := range pubs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%02d.asc", i)), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kr, err := LoadKeyring(dir, nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != len(pubs) {
		t.Fatalf("keyring has %d usable keys, want %d", kr.Len(), len(pubs))
	}
	var rs []*Recipient
	for i := range pubs {
		es, _, err := parseKeys(pubs[i])
		if err != nil {
			t.Fatal(err)
		}
		fp := fingerprintHex(es[0].PrimaryKey)
		idx := slices.IndexFunc(kr.keys, func(r *Recipient) bool { return r.fingerprint == fp })
		rs = append(rs, kr.keys[idx])
	}
	return rs
}

// encrypt runs msg through NewPGPMIMEWriter in writes of chunk bytes
// (0: one write) and returns the output.
func encrypt(t testing.TB, msg []byte, rs []*Recipient, opts Options, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewPGPMIMEWriter(&out, ParseOuterHeaders(msg), rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if chunk <= 0 {
		chunk = len(msg) + 1
	}
	for p := msg; len(p) > 0; {
		n := min(chunk, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// goDecrypt decrypts the armoured part of a PGP/MIME message with go-crypto
// and the secret key of k.
func goDecrypt(t testing.TB, out []byte, k *testKey) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armoredBlock(t, out)))
	if err != nil {
		t.Fatal(err)
	}
	md, err := gopgp.ReadMessage(block.Body, gopgp.EntityList{k.entity}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pkeskKeyIDs lists the key IDs the message's session key is encrypted to.
func pkeskKeyIDs(t testing.TB, out []byte) []string {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armoredBlock(t, out)))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	pr := packet.NewReader(block.Body)
	for {
		p, err := pr.Next()
		if err != nil {
			t.Fatalf("reading packets: %v", err)
		}
		ek, ok := p.(*packet.EncryptedKey)
		if !ok {
			break
		}
		ids = append(ids, fmt.Sprintf("%016X", ek.KeyId))
	}
	slices.Sort(ids)
	return ids
}

// outerParts parses a PGP/MIME message and checks its RFC 3156 structure;
// it returns the outer header and the armoured body of the second part.
func outerParts(t testing.TB, out []byte) (mail.Header, []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" || params["boundary"] == "" {
		t.Fatalf("outer Content-Type = %q", m.Header.Get("Content-Type"))
	}
	if m.Header.Get("MIME-Version") != "1.0" {
		t.Errorf("MIME-Version = %q", m.Header.Get("MIME-Version"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []*multipart.Part
	var bodies [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts, bodies = append(parts, p), append(bodies, b)
	}
	if len(parts) != 2 {
		t.Fatalf("multipart/encrypted with %d parts, want 2", len(parts))
	}
	if ct := parts[0].Header.Get("Content-Type"); ct != "application/pgp-encrypted" {
		t.Errorf("first part Content-Type = %q", ct)
	}
	if got := strings.TrimSpace(string(bodies[0])); got != "Version: 1" {
		t.Errorf("version part = %q", got)
	}
	if mt, _, _ := mime.ParseMediaType(parts[1].Header.Get("Content-Type")); mt != "application/octet-stream" {
		t.Errorf("second part Content-Type = %q", parts[1].Header.Get("Content-Type"))
	}
	if !bytes.HasPrefix(bodies[1], []byte("-----BEGIN PGP MESSAGE-----\r\n")) ||
		!bytes.HasSuffix(bytes.TrimSpace(bodies[1]), []byte("-----END PGP MESSAGE-----")) {
		t.Errorf("second part is not an armoured message: %.60q…", bodies[1])
	}
	return m.Header, bodies[1]
}

func TestPGPMIMEStructureAndOuterHeaders(t *testing.T) {
	ks := testKeys(t)
	rs := recipientsOf(t, ks.alice.pub)
	msg, _ := buildMessage(4096)
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("KeepSubject=%v", keep), func(t *testing.T) {
			out := encrypt(t, msg, rs, Options{KeepSubject: keep}, 0)
			checkCRLF(t, out)
			hdr, _ := outerParts(t, out)
			want := map[string]string{
				"From":       "Alice Example <alice@example.org>",
				"To":         "Gina GnuPG <gina@example.org>, Bob <Bob@Example.org>",
				"Cc":         "Dave <dave@example.org>",
				"Date":       "Tue, 3 Jun 2025 10:00:00 +0000",
				"Message-Id": "<20250603100000.4Xyz@example.org>",
				"Subject":    "...",
			}
			if keep {
				want["Subject"] = "=?utf-8?q?Quartalszahlen_Gr=C3=BC=C3=9Fe?= - secret merger plans"
			}
			for k, v := range want {
				if got := strings.Join(strings.Fields(hdr.Get(k)), " "); got != v {
					t.Errorf("outer %s = %q, want %q", k, got, v)
				}
			}
			var names []string
			for k := range hdr {
				names = append(names, k)
			}
			slices.Sort(names)
			wantNames := []string{"Cc", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
			if !slices.Equal(names, wantNames) {
				t.Errorf("outer header fields = %v, want %v", names, wantNames)
			}
			if !keep && bytes.Contains(out, []byte("merger")) {
				t.Error("the real Subject leaks into the output")
			}
		})
	}
}

// TestGoldenOuter pins the outer message's layout (the ciphertext lines are
// masked): testdata/outer.golden. Run with -update to rewrite.
func TestGoldenOuter(t *testing.T) {
	ks := testKeys(t)
	rs := recipientsOf(t, ks.alice.pub)
	msg, _ := buildMessage(100)
	out := encrypt(t, msg, rs, Options{boundary: "mv-pgp.golden"}, 0)
	masked := maskArmor(out)
	golden := filepath.Join("testdata", "outer.golden")
	if *update {
		if err := os.WriteFile(golden, masked, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenOuter -update)", err)
	}
	if !bytes.Equal(masked, want) {
		t.Errorf("outer message differs from %s:\n%s", golden, masked)
	}
}

var armorLine = regexp.MustCompile(`(?m)^[A-Za-z0-9+/=]{1,76}\r\n`)

// maskArmor replaces the base64 lines of the armour with one placeholder.
func maskArmor(out []byte) []byte {
	i := bytes.Index(out, []byte("-----BEGIN PGP MESSAGE-----\r\n\r\n"))
	j := bytes.Index(out, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < i {
		return out
	}
	start := i + len("-----BEGIN PGP MESSAGE-----\r\n\r\n")
	body := armorLine.ReplaceAll(out[start:j], nil)
	var b bytes.Buffer
	b.Write(out[:start])
	b.WriteString("<ciphertext>\r\n")
	b.Write(body)
	b.Write(out[j:])
	return b.Bytes()
}

// TestGnuPGDecryptsByteForByte is the main interoperability proof: GnuPG,
// holding only one recipient's secret key, decrypts the message that was
// encrypted to three keys of different kinds, and the result is the
// original message, byte for byte.
func TestGnuPGDecryptsByteForByte(t *testing.T) {
	ks := testKeys(t)
	gk := testGPGKey(t)
	rs := recipientsOf(t, ks.alice.pub, ks.bob.pub, gk.pub)
	msg, parts := buildMessage(300 << 10)
	out := encrypt(t, msg, rs, Options{}, 4096)
	checkCRLF(t, out)
	outerParts(t, out)

	// Every session key goes to an encryption subkey, never a primary key.
	var want []string
	for _, r := range rs {
		if r.EncryptionKeyID() == r.fingerprint[len(r.fingerprint)-16:] {
			t.Errorf("%s: encryption key is the primary key", r.userID)
		}
		want = append(want, r.EncryptionKeyID())
	}
	slices.Sort(want)
	if got := pkeskKeyIDs(t, out); !slices.Equal(got, want) {
		t.Errorf("session key encrypted to %v, want %v", got, want)
	}

	cases := []struct {
		name string
		g    func(t *testing.T) *gnupg
	}{
		{"gpg-generated key (ed25519 + cv25519 subkey)", func(t *testing.T) *gnupg { return gk.g }},
		{"go-crypto key (ed25519 + cv25519 subkey)", func(t *testing.T) *gnupg {
			g := newGnuPG(t)
			g.importKey(ks.alice.sec)
			return g
		}},
		{"go-crypto key (RSA 2048 + RSA subkey)", func(t *testing.T) *gnupg {
			g := newGnuPG(t)
			g.importKey(ks.bob.sec)
			return g
		}},
	}
	t.Run("a GnuPG without any of the keys cannot decrypt", func(t *testing.T) {
		if err := newGnuPG(t).decrypt(bytes.NewReader(armoredBlock(t, out)), io.Discard); err == nil {
			t.Fatal("decrypted without a secret key")
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := c.g(t)
			var plain bytes.Buffer
			if err := g.decrypt(bytes.NewReader(armoredBlock(t, out)), &plain); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain.Bytes(), msg) {
				t.Fatalf("decrypted entity (%d bytes) differs from the original (%d bytes)", plain.Len(), len(msg))
			}
			checkParts(t, plain.Bytes(), parts)
		})
	}
}

// TestProtectedHeaders: with ProtectedHeaders the decrypted entity is the
// original with exactly `;<eol> protected-headers="v1"` added to its
// top-level Content-Type; every other byte, the body included, is
// unchanged. However the message is split into writes.
func TestProtectedHeaders(t *testing.T) {
	ks := testKeys(t)
	gk := testGPGKey(t)
	rs := recipientsOf(t, ks.alice.pub, gk.pub)
	msg, parts := buildMessage(20 << 10)
	ct := "Content-Type: multipart/mixed; boundary=\"outer-b0undary\""
	want := bytes.Replace(msg, []byte(ct+"\r\n"), []byte(ct+";\r\n protected-headers=\"v1\"\r\n"), 1)
	if bytes.Equal(want, msg) {
		t.Fatal("test message has no Content-Type to mark")
	}
	for _, chunk := range []int{0, 1, 7, 512, 1000, 1021} {
		t.Run(fmt.Sprintf("writes of %d", chunk), func(t *testing.T) {
			out := encrypt(t, msg, rs, Options{ProtectedHeaders: true}, chunk)
			checkCRLF(t, out)
			if got := goDecrypt(t, out, ks.alice); !bytes.Equal(got, want) {
				t.Fatalf("decrypted entity:\n%.2000s", got)
			}
		})
	}
	t.Run("gpg", func(t *testing.T) {
		out := encrypt(t, msg, rs, Options{ProtectedHeaders: true}, 0)
		var plain bytes.Buffer
		if err := gk.g.decrypt(bytes.NewReader(armoredBlock(t, out)), &plain); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain.Bytes(), want) {
			t.Fatal("gpg's plaintext differs")
		}
		checkParts(t, plain.Bytes(), parts)
		m, _ := mail.ReadMessage(bytes.NewReader(plain.Bytes()))
		if _, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); params["protected-headers"] != "v1" {
			t.Errorf("inner Content-Type = %q", m.Header.Get("Content-Type"))
		}
	})
	edge := []struct{ name, in, want string }{
		{"LF line endings", "Subject: s\nContent-Type: text/plain\n\nbody\n",
			"Subject: s\nContent-Type: text/plain;\n protected-headers=\"v1\"\n\nbody\n"},
		{"folded Content-Type", "Content-Type: multipart/mixed;\r\n\tboundary=x\r\nSubject: s\r\n\r\n--x--\r\n",
			"Content-Type: multipart/mixed;\r\n\tboundary=x;\r\n protected-headers=\"v1\"\r\nSubject: s\r\n\r\n--x--\r\n"},
		{"no Content-Type", "Subject: s\r\n\r\nbody\r\n", "Subject: s\r\n\r\nbody\r\n"},
		{"already marked", "Content-Type: text/plain; protected-headers=v1\r\n\r\nb\r\n", "Content-Type: text/plain; protected-headers=v1\r\n\r\nb\r\n"},
		{"header only", "Subject: s\r\nContent-Type: text/plain\r\n", "Subject: s\r\nContent-Type: text/plain;\r\n protected-headers=\"v1\"\r\n"},
		{"unterminated header", "Subject: s\r\nContent-Type: text/plain", "Subject: s\r\nContent-Type: text/plain"},
		{"empty", "", ""},
	}
	for _, c := range edge {
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 3} {
				out := encrypt(t, []byte(c.in), rs, Options{ProtectedHeaders: true}, chunk)
				checkCRLF(t, out)
				if got := goDecrypt(t, out, ks.alice); string(got) != c.want {
					t.Errorf("writes of %d: got %q, want %q", chunk, got, c.want)
				}
			}
		})
	}
	t.Run("header longer than MaxHeaderBytes is left alone", func(t *testing.T) {
		long := "Content-Type: text/plain\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("f", 90)+"\r\n", MaxHeaderBytes/100+10) + "\r\nbody\r\n"
		out := encrypt(t, []byte(long), rs, Options{ProtectedHeaders: true}, 4000)
		if got := goDecrypt(t, out, ks.alice); string(got) != long {
			t.Error("an over-long header was changed")
		}
	})
}

// TestOutputIsCRLFOnly feeds inputs with LF, bare CR and NUL, and hand-made
// outer headers with stray line breaks, and checks that every line of the
// output ends in CRLF while the plaintext stays exactly as written.
func TestOutputIsCRLFOnly(t *testing.T) {
	ks := testKeys(t)
	rs := recipientsOf(t, ks.alice.pub)
	inputs := map[string]string{
		"LF only":    "From: a@example.org\nTo: b@example.org\nSubject: x\n\nline 1\n.\nline 2\n",
		"bare CR":    "From: a@example.org\rX\r\nTo: b@example.org\r\n\r\nbody\rmore\r\n",
		"binary":     "Subject: bin\r\n\r\n\x00\x01\r\r\n\n\xff",
		"no header":  "just a body line\n",
		"empty":      "",
		"no newline": "Subject: x",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			for _, ph := range []bool{false, true} {
				out := encrypt(t, []byte(in), rs, Options{ProtectedHeaders: ph, KeepSubject: true}, 0)
				checkCRLF(t, out)
				if got := goDecrypt(t, out, ks.alice); !ph && string(got) != in {
					t.Errorf("plaintext = %q, want %q", got, in)
				}
			}
		})
	}
	t.Run("hand-made outer headers", func(t *testing.T) {
		var out bytes.Buffer
		outer := OuterHeaders{
			From:    "a@example.org\nBcc: injected@example.org",
			To:      "b@example.org,\r\n\r\nc@example.org\r",
			Subject: "two\rlines\x00",
		}
		w, err := NewPGPMIMEWriter(&out, outer, rs, Options{KeepSubject: true})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "x")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkCRLF(t, out.Bytes())
		hdr, _ := outerParts(t, out.Bytes())
		if hdr.Get("Bcc") != "" {
			t.Error("a line break in a value started a new field")
		}
	})
}

func TestWriterErrors(t *testing.T) {
	ks := testKeys(t)
	rs := recipientsOf(t, ks.alice.pub, ks.later.pub)
	t.Run("no recipients", func(t *testing.T) {
		if _, err := NewPGPMIMEWriter(io.Discard, OuterHeaders{}, nil, Options{}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("nil recipient", func(t *testing.T) {
		if _, err := NewPGPMIMEWriter(io.Discard, OuterHeaders{}, []*Recipient{nil}, Options{}); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("key expired since the keyring was loaded", func(t *testing.T) {
		var out bytes.Buffer
		_, err := NewPGPMIMEWriter(&out, OuterHeaders{}, rs, Options{Now: fixedClock(time.Now().Add(3 * time.Hour))})
		if err == nil || !strings.Contains(err.Error(), rs[1].fingerprint) {
			t.Fatalf("err = %v, want one naming %s", err, rs[1].fingerprint)
		}
		if out.Len() != 0 {
			t.Error("wrote to dst before failing")
		}
	})
	t.Run("failing dst", func(t *testing.T) {
		boom := errors.New("boom")
		w, err := NewPGPMIMEWriter(&failAfter{n: 100 << 10, err: boom}, OuterHeaders{}, rs[:1], Options{})
		if err != nil {
			t.Fatal(err)
		}
		var werr error
		for i := 0; i < 100 && werr == nil; i++ {
			_, werr = w.Write(make([]byte, 8192))
		}
		if werr == nil {
			werr = w.Close()
		}
		if !errors.Is(werr, boom) {
			t.Fatalf("err = %v, want boom", werr)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, boom) {
			t.Errorf("write after failure: %v", err)
		}
		if err := w.Close(); !errors.Is(err, boom) {
			t.Errorf("close after failure: %v", err)
		}
	})
	t.Run("write after close", func(t *testing.T) {
		w, err := NewPGPMIMEWriter(io.Discard, OuterHeaders{}, rs[:1], Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("write after close succeeded")
		}
		if err := w.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// TestConcurrentEncryption shares one keyring and its recipients between
// goroutines (run with -race).
func TestConcurrentEncryption(t *testing.T) {
	ks := testKeys(t)
	rs := recipientsOf(t, ks.alice.pub, ks.bob.pub)
	msg, _ := buildMessage(8 << 10)
	outs := make([]bytes.Buffer, 8)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := NewPGPMIMEWriter(&outs[i], ParseOuterHeaders(msg), rs, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := io.Copy(w, iotest.HalfReader(bytes.NewReader(msg))); err != nil {
				t.Error(err)
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range outs {
		if got := goDecrypt(t, outs[i].Bytes(), ks.bob); !bytes.Equal(got, msg) {
			t.Errorf("round trip %d differs", i)
		}
	}
}

// TestGnuPGReadsEveryArmourTail: the armour's last line holds 1, 2 or 3
// bytes (two, one or no '=' of padding). GnuPG 2.2 needs the CRC24 line to
// find the end of a block whose last line has no padding, so every tail is
// decrypted by gpg.
func TestGnuPGReadsEveryArmourTail(t *testing.T) {
	gk := testGPGKey(t)
	rs := recipientsOf(t, gk.pub)
	for _, n := range []int{1000, 100000} {
		for d := range 3 {
			msg := bytes.Repeat([]byte("m"), n+d)
			out := encrypt(t, msg, rs, Options{}, 0)
			var plain bytes.Buffer
			if err := gk.g.decrypt(bytes.NewReader(armoredBlock(t, out)), &plain); err != nil {
				t.Fatalf("%d bytes: %v", n+d, err)
			}
			if !bytes.Equal(plain.Bytes(), msg) {
				t.Fatalf("%d bytes: plaintext differs", n+d)
			}
		}
	}
}
