package pgpmime

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gopgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// HiddenSubject is the outer Subject of an encrypted message unless
// Options.KeepSubject is set.
const HiddenSubject = "..."

// Options tune NewPGPMIMEWriter. The zero value is the default.
type Options struct {
	// KeepSubject shows the original Subject outside; by default the outer
	// Subject is HiddenSubject and the real one travels only inside.
	KeepSubject bool
	// ProtectedHeaders marks the encrypted entity as carrying protected
	// headers (protected-headers="v1" added to its top-level Content-Type),
	// so that mail clients that know the convention show the inner Subject.
	// This changes the encrypted copy of the original header by that one
	// parameter; without it the encrypted entity is the original byte for
	// byte. A header longer than MaxHeaderBytes or without a Content-Type
	// field is left unchanged.
	ProtectedHeaders bool
	// Now is the clock keys are judged by (nil: time.Now).
	Now func() time.Time
	// Rand is the randomness source (nil: crypto/rand).
	Rand io.Reader

	boundary string // fixed boundary, for golden tests
}

// NewPGPMIMEWriter starts a PGP/MIME message (RFC 3156) on dst, encrypted to
// every recipient. The caller writes the complete original message into the
// returned writer, header and body exactly as received; Close finishes the
// message (it does not close dst).
//
// dst receives: the outer header (From, To, Cc, Date, Message-ID from outer,
// Subject HiddenSubject unless opts.KeepSubject, MIME-Version and a
// multipart/encrypted Content-Type), the application/pgp-encrypted version
// part, and an application/octet-stream part holding an ASCII-armoured
// OpenPGP message whose plaintext is the original message (see
// Options.ProtectedHeaders). Every line of dst ends in CRLF.
//
// The message is encrypted as it is written, in constant memory, with a
// fresh AES-256 session key (AES-128 if a recipient's preferences demand it)
// in a SEIPD v1 (MDC) packet, uncompressed and unsigned: the format every
// OpenPGP implementation in use reads, GnuPG 2.2 included.
//
// An error (no recipients, a key no longer usable, a failing dst) leaves
// dst incomplete: the caller must abandon that transaction.
func NewPGPMIMEWriter(dst io.Writer, outer OuterHeaders, recipients []*Recipient, opts Options) (io.WriteCloser, error) {
	if len(recipients) == 0 {
		return nil, errors.New("openpgp: encrypt: no recipients")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	random := opts.Rand
	if random == nil {
		random = rand.Reader
	}
	at := now()
	entities := make([]*gopgp.Entity, len(recipients))
	for i, r := range recipients {
		if r == nil || r.entity == nil {
			return nil, fmt.Errorf("openpgp: encrypt: recipient %d is nil", i)
		}
		if _, ok := r.entity.EncryptionKey(at); !ok {
			return nil, fmt.Errorf("openpgp: encrypt: key %s has no usable encryption key at %s", r.fingerprint, at.UTC().Format(time.RFC3339))
		}
		entities[i] = r.entity
	}
	boundary := opts.boundary
	if boundary == "" {
		var b [16]byte
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return nil, fmt.Errorf("openpgp: encrypt: boundary: %w", err)
		}
		// '.' and '-' are outside the base64 alphabet, so no armour line can
		// look like the boundary.
		boundary = "mv-pgp." + hex.EncodeToString(b[:])
	}

	w := &pgpMIMEWriter{
		out:      bufio.NewWriterSize(dst, 64<<10),
		boundary: boundary,
		inHeader: opts.ProtectedHeaders,
	}
	w.writeOuter(outer, opts.KeepSubject)

	aw := newArmorWriter(w.out)
	cfg := &packet.Config{
		Rand:                   random,
		Time:                   func() time.Time { return at },
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
	pw, err := gopgp.Encrypt(aw, entities, nil, &gopgp.FileHints{IsBinary: true}, cfg)
	if err != nil {
		return nil, fmt.Errorf("openpgp: encrypt: %w", err)
	}
	w.armor, w.plain = aw, pw
	return w, nil
}

type pgpMIMEWriter struct {
	out      *bufio.Writer
	armor    *armorWriter   // armour encoder, into out
	plain    io.WriteCloser // OpenPGP plaintext, into armor
	boundary string
	inHeader bool   // still buffering the header for the protected-headers rewrite
	hdr      []byte // the buffered header
	scan     int    // where the header scan resumes in hdr
	err      error  // sticky
	closed   bool
}

// writeOuter writes the outer header and everything up to the armour into
// the buffer; errors surface on the first flush.
func (w *pgpMIMEWriter) writeOuter(h OuterHeaders, keepSubject bool) {
	b := w.out
	field := func(name, value string) {
		if value = strings.TrimSpace(sanitizeValue(value)); value != "" {
			b.WriteString(name + ": " + value + "\r\n")
		}
	}
	field("From", h.From)
	field("To", h.To)
	field("Cc", h.Cc)
	field("Date", h.Date)
	field("Message-ID", h.MessageID)
	if keepSubject {
		field("Subject", h.Subject)
	} else {
		field("Subject", HiddenSubject)
	}
	b.WriteString("MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted;\r\n" +
		" protocol=\"application/pgp-encrypted\";\r\n" +
		" boundary=\"" + w.boundary + "\"\r\n" +
		"\r\n" +
		"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n" +
		"--" + w.boundary + "\r\n" +
		"Content-Type: application/pgp-encrypted\r\n" +
		"Content-Description: PGP/MIME version identification\r\n" +
		"\r\n" +
		"Version: 1\r\n" +
		"\r\n" +
		"--" + w.boundary + "\r\n" +
		"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n" +
		"Content-Description: OpenPGP encrypted message\r\n" +
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n" +
		"\r\n")
}

func (w *pgpMIMEWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("openpgp: write after close")
	}
	if w.inHeader {
		return w.bufferHeader(p)
	}
	if err := w.encrypt(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeChunk bounds each write into the OpenPGP writer: go-crypto's partial
// length writer buffers up to twice the size of one write, and its stream
// cipher allocates one buffer per write.
const writeChunk = 64 << 10

func (w *pgpMIMEWriter) encrypt(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		if _, err := w.plain.Write(p[:n]); err != nil {
			w.err = fmt.Errorf("openpgp: encrypt: %w", err)
			return w.err
		}
		p = p[n:]
	}
	return nil
}

// bufferHeader collects the original header until its end is seen (or it
// outgrows MaxHeaderBytes), then writes it, rewritten, and what followed it.
func (w *pgpMIMEWriter) bufferHeader(p []byte) (int, error) {
	take := min(len(p), MaxHeaderBytes-len(w.hdr))
	w.hdr = append(w.hdr, p[:take]...)
	end, _, complete, next := scanHeader(w.hdr, w.scan)
	w.scan = next
	if !complete && len(w.hdr) < MaxHeaderBytes {
		return len(p), nil
	}
	if err := w.flushHeader(end, complete); err != nil {
		return 0, err
	}
	if err := w.encrypt(p[take:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *pgpMIMEWriter) flushHeader(end int, complete bool) error {
	w.inHeader = false
	hdr := w.hdr
	w.hdr = nil
	if !complete {
		return w.encrypt(hdr)
	}
	if err := w.encrypt(protectHeader(hdr[:end])); err != nil {
		return err
	}
	return w.encrypt(hdr[end:])
}

// protectHeader adds protected-headers="v1" to the header's Content-Type.
func protectHeader(h []byte) []byte {
	for _, f := range parseFields(h) {
		if !strings.EqualFold(f.name, "content-type") {
			continue
		}
		if _, params := mediaType(f.value); params == nil || params["protected-headers"] != "" {
			return h // unparsable or already marked: leave as it is
		}
		nl := "\r\n"
		if f.eol < len(h) && h[f.eol] == '\n' {
			nl = "\n"
		}
		out := make([]byte, 0, len(h)+32)
		out = append(out, h[:f.eol]...)
		out = append(out, ";"+nl+" protected-headers=\"v1\""...)
		return append(out, h[f.eol:]...)
	}
	return h
}

// Close finishes the encryption and the outer message and flushes it to dst.
func (w *pgpMIMEWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if w.inHeader {
		// The whole message fit into what looked like a header: a message
		// without a body. Its header is all of it.
		end, complete := len(w.hdr), len(w.hdr) > 0 && w.hdr[len(w.hdr)-1] == '\n'
		if err := w.flushHeader(end, complete); err != nil {
			return err
		}
	}
	if err := w.plain.Close(); err != nil {
		w.err = fmt.Errorf("openpgp: encrypt: %w", err)
		return w.err
	}
	if err := w.armor.Close(); err != nil {
		w.err = fmt.Errorf("openpgp: encrypt: %w", err)
		return w.err
	}
	w.out.WriteString("\r\n--" + w.boundary + "--\r\n")
	if err := w.out.Flush(); err != nil {
		w.err = fmt.Errorf("openpgp: encrypt: %w", err)
	}
	return w.err
}
