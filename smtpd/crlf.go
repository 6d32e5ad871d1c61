package smtpd

import "io"

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

func (c *crlfWriter) Write(p []byte) (int, error) {
	out := c.buf[:0]
	for _, b := range p {
		switch {
		case c.pending && b == '\n':
			out = append(out, '\n')
			c.pending = false
			continue
		case c.pending:
			out = append(out, '\n') // bare CR: complete it
			c.pending = false
		}
		switch b {
		case '\r':
			out = append(out, '\r')
			c.pending = true
		case '\n':
			out = append(out, '\r', '\n') // bare LF
		default:
			out = append(out, b)
		}
		if len(out) >= cap(c.buf)-4 {
			if _, err := c.w.Write(out); err != nil {
				return 0, err
			}
			out = c.buf[:0]
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

// Flush completes a trailing bare CR.
func (c *crlfWriter) Flush() error {
	if c.pending {
		c.pending = false
		_, err := c.w.Write([]byte{'\n'})
		return err
	}
	return nil
}
