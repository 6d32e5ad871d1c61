package pgpmime

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDetect(t *testing.T) {
	ks := testKeys(t)
	rs := recipientsOf(t, ks.alice.pub)
	ours := encrypt(t, []byte("Subject: hi\r\n\r\nhello\r\n"), rs, Options{}, 0)
	cases := []struct {
		name string
		msg  string
		want Protection
	}{
		{"our own PGP/MIME output", string(ours), MultipartEncrypted},
		{"multipart/encrypted", "From: a@b.c\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x--\r\n", MultipartEncrypted},
		{"case and folding", "MIME-Version: 1.0\r\ncontent-type:\r\n\tMultipart/Encrypted;\r\n boundary=\"x\"\r\n\r\n", MultipartEncrypted},
		{"multipart/encrypted, bad params", "Content-Type: multipart/encrypted; boundary=\"unterminated\r\n\r\n", MultipartEncrypted},
		{"S/MIME enveloped", "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n", SMIMEEnveloped},
		{"S/MIME x-pkcs7, no smime-type", "Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\nMIAG\r\n", SMIMEEnveloped},
		{"S/MIME authEnveloped", "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n\r\nMIAG\r\n", SMIMEEnveloped},
		{"inline PGP", "From: a@b.c\r\nSubject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n", InlinePGP},
		{"inline PGP after blank lines, LF", "Subject: x\n\n\n  \n-----BEGIN PGP MESSAGE-----\nVersion: x\n\nhQEMA\n", InlinePGP},
		{"inline PGP, text/plain", "Content-Type: text/plain; charset=us-ascii\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n", InlinePGP},
		{"inline PGP, application/pgp-encrypted", "Content-Type: application/pgp-encrypted\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n", InlinePGP},

		{"plain text", "From: a@b.c\r\nSubject: hi\r\n\r\nhello\r\n", NotEncrypted},
		{"no body", "From: a@b.c\r\nSubject: hi\r\n", NotEncrypted},
		{"empty", "", NotEncrypted},
		{"S/MIME opaque signed", "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\nMIAG\r\n", NotEncrypted},
		{"S/MIME compressed", "Content-Type: application/pkcs7-mime; smime-type=compressed-data\r\n\r\nMIAG\r\n", NotEncrypted},
		{"multipart/signed", "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=x\r\n\r\n--x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n", NotEncrypted},
		{"PGP block inside a part", "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--x--\r\n", NotEncrypted},
		{"PGP block after text", "Subject: x\r\n\r\nSee below:\r\n-----BEGIN PGP MESSAGE-----\r\n", NotEncrypted},
		{"signed, not encrypted", "Subject: x\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\n", NotEncrypted},
		{"look-alike line", "Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----X\r\n", NotEncrypted},
		{"Content-Type in the body", "Subject: x\r\n\r\nContent-Type: multipart/encrypted\r\n", NotEncrypted},
		{"header without end in window", "Content-Type: multipart/encrypted\r\n" + strings.Repeat("X-F: "+strings.Repeat("y", 70)+"\r\n", SniffWindow/70), NotEncrypted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Detect([]byte(c.msg)); got != c.want {
				t.Errorf("Detect = %v, want %v", got, c.want)
			}
			if got := c.want.Encrypted(); got != (c.want != NotEncrypted) {
				t.Errorf("Encrypted() = %v", got)
			}
			// Sniff says the same and hands the whole message back.
			for _, r := range []io.Reader{strings.NewReader(c.msg), iotest.OneByteReader(strings.NewReader(c.msg))} {
				p, rr, err := Sniff(r)
				if err != nil {
					t.Fatal(err)
				}
				if p != c.want {
					t.Errorf("Sniff = %v, want %v", p, c.want)
				}
				all, err := io.ReadAll(rr)
				if err != nil || string(all) != c.msg {
					t.Errorf("Sniff's reader returned %d bytes, %v; want the %d bytes of the message", len(all), err, len(c.msg))
				}
			}
		})
	}
}

func TestSniffLargeMessageReplaysEverything(t *testing.T) {
	msg := []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef", 100000))
	p, r, err := Sniff(bytes.NewReader(msg))
	if err != nil || p != NotEncrypted {
		t.Fatalf("Sniff = %v, %v", p, err)
	}
	got, err := io.ReadAll(iotest.HalfReader(r))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("replayed %d bytes, %v; want %d", len(got), err, len(msg))
	}
	if _, _, err := Sniff(iotest.ErrReader(io.ErrClosedPipe)); err == nil {
		t.Error("a read error was not returned")
	}
}
