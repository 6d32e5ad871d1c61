package mime

import "io"

// Scanner is an io.Writer that builds a PartMap from the raw message bytes
// written into it, in one pass and bounded memory. Write never fails.
type Scanner struct{}

func NewScanner(l Limits) *Scanner                 { panic("unimplemented") }
func (s *Scanner) Write(p []byte) (int, error)     { panic("unimplemented") }
func (s *Scanner) Close() *PartMap                 { panic("unimplemented") }
func Scan(r io.Reader, l Limits) (*PartMap, error) { panic("unimplemented") }

// Decode transfer-decodes a part body read from r (base64,
// quoted-printable; anything else passes through).
func Decode(r io.Reader, transferEncoding string) io.Reader { panic("unimplemented") }
