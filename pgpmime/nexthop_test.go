package pgpmime

import (
	"bytes"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A recording next hop over loopback SMTP (go-smtp), standing in for
// Postfix's re-injection port, and a forwarding routine that uses this
// package the way the forwarding stage does: Sniff, Plan, one transaction
// per group, the encrypted group streamed through NewPGPMIMEWriter straight
// into DATA.

type delivery struct {
	from  string
	rcpts []string
	data  []byte
}

type nextHop struct {
	mu         sync.Mutex
	deliveries []delivery
	addr       string
}

func startNextHop(t *testing.T) *nextHop {
	t.Helper()
	h := &nextHop{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &hopSession{hop: h}, nil }))
	s.Domain = "nexthop.test"
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	s.MaxMessageBytes = 100 << 20
	s.EnableSMTPUTF8 = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return h
}

func (h *nextHop) received() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.deliveries)
}

type hopSession struct {
	hop *nextHop
	cur delivery
}

func (s *hopSession) Reset()        { s.cur = delivery{} }
func (s *hopSession) Logout() error { return nil }
func (s *hopSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.from = from
	return nil
}
func (s *hopSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.rcpts = append(s.cur.rcpts, to)
	return nil
}
func (s *hopSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r) // go-smtp refuses bare LF in DATA
	if err != nil {
		return err
	}
	s.cur.data = b
	s.hop.mu.Lock()
	s.hop.deliveries = append(s.hop.deliveries, s.cur)
	s.hop.mu.Unlock()
	return nil
}

// forward sends msg from the envelope sender to rcpts through the next hop
// and returns the refused recipients.
func forward(t *testing.T, hop string, from string, rcpts []string, msg []byte, kr *Keyring, policy Policy) (refused []string) {
	t.Helper()
	prot, r, err := Sniff(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if prot.Encrypted() {
		send(t, hop, from, rcpts, func(w io.Writer) error { _, err := io.Copy(w, r); return err })
		return nil
	}
	enc, keys, plain, refused := Plan(rcpts, kr, policy)
	if len(enc) > 0 {
		send(t, hop, from, enc, func(w io.Writer) error {
			pw, err := NewPGPMIMEWriter(w, ParseOuterHeaders(msg), keys, Options{})
			if err != nil {
				return err
			}
			if _, err := io.Copy(pw, r); err != nil {
				return err
			}
			return pw.Close()
		})
		r = bytes.NewReader(msg) // the stage would re-read its stream; the test has the bytes
	}
	if len(plain) > 0 {
		send(t, hop, from, plain, func(w io.Writer) error { _, err := io.Copy(w, r); return err })
	}
	return refused
}

func send(t *testing.T, hop, from string, rcpts []string, body func(io.Writer) error) {
	t.Helper()
	c, err := smtp.Dial(hop)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mailvault.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcpts {
		if err := c.Rcpt(rc, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if err := body(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// TestNextHopReceivesWhatGnuPGDecrypts: mixed recipients under each policy.
// The next hop gets one transaction per group; GnuPG, holding one
// recipient's secret key, decrypts what the next hop received to the
// original message byte for byte; recipients without a usable key get the
// original (opportunistic) or are refused (required); nobody is dropped or
// sent a duplicate, and nothing goes out in the clear under required.
func TestNextHopReceivesWhatGnuPGDecrypts(t *testing.T) {
	ks := testKeys(t)
	gk := testGPGKey(t)
	dir := t.TempDir()
	writeKeyDir(t, dir, ks.alice, ks.expired, ks.revoked, ks.subExpired)
	if err := writeFile(dir+"/gina.asc", gk.pub); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(dir, nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	aliceGPG := newGnuPG(t)
	aliceGPG.importKey(ks.alice.sec)

	msg, parts := buildMessage(256 << 10)
	rcpts := []string{"gina@example.org", "dave@example.org", "alice@example.org", "ed@example.org", "rita@example.org", "sue@example.org"}
	withKey := []string{"gina@example.org", "alice@example.org"}
	without := []string{"dave@example.org", "ed@example.org", "rita@example.org", "sue@example.org"}

	type want struct {
		encrypted, plain, refused []string
	}
	for _, c := range []struct {
		policy Policy
		want   want
	}{
		{PolicyOff, want{nil, rcpts, nil}},
		{PolicyOpportunistic, want{withKey, without, nil}},
		{PolicyRequired, want{withKey, nil, without}},
	} {
		t.Run(string(c.policy), func(t *testing.T) {
			hop := startNextHop(t)
			refused := forward(t, hop.addr, "alice@example.org", rcpts, msg, kr, c.policy)
			if !slices.Equal(refused, c.want.refused) {
				t.Errorf("refused %q, want %q", refused, c.want.refused)
			}
			var gotEnc, gotPlain []string
			for _, d := range hop.received() {
				checkCRLF(t, d.data)
				if Detect(d.data) == MultipartEncrypted {
					if gotEnc != nil {
						t.Error("two encrypted transactions")
					}
					gotEnc = d.rcpts
					outerParts(t, d.data)
					for name, g := range map[string]*gnupg{"gina (gpg key)": gk.g, "alice (go-crypto key)": aliceGPG} {
						var plain bytes.Buffer
						if err := g.decrypt(bytes.NewReader(armoredBlock(t, d.data)), &plain); err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						if !bytes.Equal(plain.Bytes(), msg) {
							t.Fatalf("%s: decrypted entity differs from the original", name)
						}
						checkParts(t, plain.Bytes(), parts)
					}
					continue
				}
				if gotPlain != nil {
					t.Error("two plain transactions")
				}
				gotPlain = d.rcpts
				if !bytes.Equal(d.data, msg) {
					t.Error("the plain group did not get the original byte for byte")
				}
			}
			if !slices.Equal(gotEnc, c.want.encrypted) || !slices.Equal(gotPlain, c.want.plain) {
				t.Errorf("next hop got encrypted %q, plain %q; want %q, %q", gotEnc, gotPlain, c.want.encrypted, c.want.plain)
			}
		})
	}

	t.Run("already encrypted passes through unchanged", func(t *testing.T) {
		rs := recipientsOf(t, gk.pub)
		pgpMIME := encrypt(t, msg, rs, Options{}, 0)
		smime := []byte("From: a@example.org\r\nTo: dave@example.org\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggFLMIIBRwIBADAvMCoxEzARBgNVBAoTCkV4YW1wbGUg\r\n")
		inline := []byte("From: a@example.org\r\nTo: dave@example.org\r\nSubject: inline\r\n\r\n" + string(armoredBlock(t, pgpMIME)))
		for name, in := range map[string][]byte{"PGP/MIME": pgpMIME, "S/MIME": smime, "inline PGP": inline} {
			hop := startNextHop(t)
			if refused := forward(t, hop.addr, "a@example.org", rcpts, in, kr, PolicyRequired); len(refused) != 0 {
				t.Errorf("%s: refused %q", name, refused)
			}
			got := hop.received()
			if len(got) != 1 || !slices.Equal(got[0].rcpts, rcpts) || !bytes.Equal(got[0].data, in) {
				t.Errorf("%s: not passed through unchanged to every recipient in one transaction", name)
			}
		}
	})
}
