package ingest

import (
	"bytes"
	"regexp"
)

// headSniffer keeps the first bytes of a message, to find Postfix's queue id.
type headSniffer struct {
	max int
	b   []byte
}

func (h *headSniffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// receivedID matches the queue id in a Postfix Received header:
// "by mx.example.test (Postfix) with ESMTP id 4Xc9Q22XyPz1;".
var receivedID = regexp.MustCompile(`(?is)^received:[^;]*?\bid ([0-9A-Za-z]{6,32})\b`)

// queueID returns the queue id from the first Received header, if any.
func (h *headSniffer) queueID() string {
	end := bytes.Index(h.b, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(h.b)
	}
	hdr := h.b[:end]
	for len(hdr) > 0 {
		// Unfold the first header field.
		i := 0
		for {
			j := bytes.IndexByte(hdr[i:], '\n')
			if j < 0 {
				i = len(hdr)
				break
			}
			i += j + 1
			if i >= len(hdr) || (hdr[i] != ' ' && hdr[i] != '\t') {
				break
			}
		}
		field := hdr[:i]
		hdr = hdr[i:]
		if m := receivedID.FindSubmatch(field); m != nil {
			return string(m[1])
		}
		if len(field) >= 9 && bytes.EqualFold(field[:9], []byte("received:")) {
			return "" // the top Received header is not Postfix's
		}
	}
	return ""
}
