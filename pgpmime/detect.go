package pgpmime

import (
	"bytes"
	"errors"
	"io"
	stdmime "mime"
	"strings"
)

// SniffWindow is how much of a message Sniff reads: a header of up to
// MaxHeaderBytes and the start of the body.
const SniffWindow = MaxHeaderBytes + 64<<10

// Protection says how a message is already encrypted, if it is.
type Protection int

const (
	// NotEncrypted is a message that is not (wholly) encrypted.
	NotEncrypted Protection = iota
	// MultipartEncrypted is a multipart/encrypted message (PGP/MIME, RFC 1847).
	MultipartEncrypted
	// SMIMEEnveloped is an application/pkcs7-mime message holding enveloped
	// (encrypted) data.
	SMIMEEnveloped
	// InlinePGP is a single-part message whose body is an armoured OpenPGP
	// message.
	InlinePGP
)

// Encrypted reports whether the message is already encrypted and must pass
// through unchanged.
func (p Protection) Encrypted() bool { return p != NotEncrypted }

func (p Protection) String() string {
	switch p {
	case NotEncrypted:
		return "none"
	case MultipartEncrypted:
		return "multipart/encrypted"
	case SMIMEEnveloped:
		return "s/mime"
	case InlinePGP:
		return "inline-pgp"
	}
	return "unknown"
}

var pgpMessageBegin = []byte("-----BEGIN PGP MESSAGE-----")

// Detect says whether the message that prefix is the start of (up to
// SniffWindow bytes of it; more is ignored) is already encrypted:
//
//   - a top-level Content-Type of multipart/encrypted;
//   - application/pkcs7-mime or application/x-pkcs7-mime, unless its
//     smime-type says the content is only signed, compressed or certificates
//     (those are readable by anyone and get encrypted);
//   - a single-part message whose body, after blank lines, starts with
//     "-----BEGIN PGP MESSAGE-----" (inline PGP).
//
// An armoured block further into a body or inside one part of a multipart
// message does not make the message encrypted: the rest of it is readable.
// A header that does not end within the window is judged NotEncrypted, so in
// doubt a message is encrypted (again) rather than sent in the clear.
func Detect(prefix []byte) Protection {
	if len(prefix) > SniffWindow {
		prefix = prefix[:SniffWindow]
	}
	end, body, complete := splitHeader(prefix)
	if !complete {
		return NotEncrypted
	}
	var ct string
	for _, f := range parseFields(prefix[:end]) {
		if strings.EqualFold(f.name, "content-type") {
			ct = f.value
			break
		}
	}
	mt, params := mediaType(ct)
	switch {
	case mt == "multipart/encrypted":
		return MultipartEncrypted
	case mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime":
		switch strings.ToLower(params["smime-type"]) {
		case "signed-data", "compressed-data", "certs-only":
			return NotEncrypted
		}
		return SMIMEEnveloped
	case strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/"):
		return NotEncrypted
	}
	rest := bytes.TrimLeft(prefix[body:], " \t\r\n")
	if bytes.HasPrefix(rest, pgpMessageBegin) {
		if tail := rest[len(pgpMessageBegin):]; len(tail) == 0 || tail[0] == '\r' || tail[0] == '\n' {
			return InlinePGP
		}
	}
	return NotEncrypted
}

// mediaType parses a Content-Type value leniently: lower-case type and its
// parameters, or just the type when the parameters are malformed.
func mediaType(v string) (string, map[string]string) {
	v = strings.Join(strings.Fields(v), " ") // unfold
	if v == "" {
		return "", nil
	}
	if mt, params, err := stdmime.ParseMediaType(v); err == nil {
		return mt, params
	}
	t, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(t)), nil
}

// Sniff reads up to SniffWindow bytes of the message r, says whether it is
// already encrypted, and returns a reader that yields the whole message
// again, from its first byte. A read error other than io.EOF is returned.
func Sniff(r io.Reader) (Protection, io.Reader, error) {
	buf := make([]byte, SniffWindow)
	n, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return NotEncrypted, nil, err
	}
	buf = buf[:n]
	return Detect(buf), io.MultiReader(bytes.NewReader(buf), r), nil
}
