package smtpd

import (
	"bytes"
	"io"
)

// crlfWriter rewrites bare CR and bare LF as CRLF, so that what goes to the
// next hop has CRLF line endings only. (Postfix's re-injection port is exempt
// from its own smuggling checks, so a bare line ending must never reach it.)
type crlfWriter struct {
	w       io.Writer
	pending bool // the last byte written was a CR whose LF may still come
	buf     []byte
}

func newCRLFWriter(w io.Writer) *crlfWriter {
	return &crlfWriter{w: w, buf: make([]byte, 0, 32<<10)}
}

// Write copies runs without CR or LF whole (found with bytes.IndexByte) and
// looks at line endings only: every byte of a forwarded message goes through
// here, and a byte-at-a-time loop was a large part of the forwarding cost.
func (c *crlfWriter) Write(p []byte) (int, error) {
	out := c.buf[:0]
	i := 0
	if c.pending && len(p) > 0 {
		c.pending = false
		out = append(out, '\n') // the CR's LF, or the one a bare CR gets
		if p[0] == '\n' {
			i = 1
		}
	}
	// nl and cr are the next LF and CR at or after i (len(p): none), each
	// searched for again only once passed, so that the work stays linear
	// however the two are mixed.
	nl, cr := -1, -1
	for i < len(p) {
		if nl < i {
			nl = nextByte(p, i, '\n')
		}
		if cr < i {
			cr = nextByte(p, i, '\r')
		}
		k := min(nl, cr)
		if len(out)+(k-i)+2 > cap(out) {
			if len(out) > 0 {
				if _, err := c.w.Write(out); err != nil {
					return 0, err
				}
				out = c.buf[:0]
			}
			if (k-i)+2 > cap(out) { // a run longer than the buffer goes as it is
				if _, err := c.w.Write(p[i:k]); err != nil {
					return 0, err
				}
				i = k
				continue
			}
		}
		out = append(out, p[i:k]...)
		i = k
		switch {
		case i == len(p):
		case p[i] == '\n': // bare LF
			out = append(out, '\r', '\n')
			i++
		case i+1 == len(p): // CR at the end: its LF may come in the next write
			out = append(out, '\r')
			c.pending = true
			i++
		case p[i+1] == '\n': // CRLF
			out = append(out, '\r', '\n')
			i += 2
		default: // bare CR
			out = append(out, '\r', '\n')
			i++
		}
	}
	if len(out) > 0 {
		if _, err := c.w.Write(out); err != nil {
			return 0, err
		}
	}
	c.buf = out[:0]
	return len(p), nil
}

// nextByte returns the index of the first b in p at or after i, or len(p).
func nextByte(p []byte, i int, b byte) int {
	if j := bytes.IndexByte(p[i:], b); j >= 0 {
		return i + j
	}
	return len(p)
}

// Flush completes a trailing bare CR.
func (c *crlfWriter) Flush() error {
	if c.pending {
		c.pending = false
		_, err := c.w.Write([]byte{'\n'})
		return err
	}
	return nil
}

// NewCRLFWriter returns the forwarder's line-ending rewriter onto w, for
// anything else that hands archived bytes to the next hop (package
// restore). Flush writes what a trailing CR held back.
func NewCRLFWriter(w io.Writer) interface {
	io.Writer
	Flush() error
} {
	return newCRLFWriter(w)
}
