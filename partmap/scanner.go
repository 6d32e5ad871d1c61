package partmap

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Default limits, used where a Limits field is zero (or negative).
const (
	defaultMaxDepth       = 32
	defaultMaxParts       = 1000
	defaultMaxHeaderBytes = 64 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = defaultMaxParts
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	return l
}

const (
	octetStream = "application/octet-stream"

	// candCap is how much of a line is kept to tell whether it is a
	// boundary delimiter: "--", the longest boundary we accept, "--".
	candCap = 256

	// countChunk is how much part body is decoded at once to count it.
	countChunk = 16 << 10
)

var (
	crByte      = []byte{'\r'}
	terminators = [3][]byte{nil, []byte("\n"), []byte("\r\n")}
	spaces      = []byte(strings.Repeat(" ", 256))
)

// region is what the bytes being read belong to.
type region uint8

const (
	inHeader region = iota // a header, the top one or a part's
	inBody                 // a leaf part's body
	inOpaque               // an opaque part, up to the next delimiter of an enclosing multipart
	inSkip                 // a preamble or epilogue: no part
	inTail                 // past MaxParts: one opaque part to the end of the message
)

// frame is one open multipart.
type frame struct {
	dash      []byte // "--" + boundary
	path      string // the multipart's own path, "" for the message itself
	bodyStart int64
	children  int
	digest    bool // multipart/digest: parts default to message/rfc822
}

// Scanner is an io.Writer that builds a PartMap from the raw message bytes
// written into it, in one pass and bounded memory. Write never fails.
//
// Lines end in LF, with or without a CR before it; a CR not followed by LF
// is data (as in net/textproto and mime/multipart). A Scanner holds at most:
// one header (MaxHeaderBytes), the first 256 bytes of the current line,
// MaxDepth boundaries, MaxParts Part records and a 16 KiB decoding buffer.
// It is not safe for concurrent use.
type Scanner struct {
	lim    Limits
	pm     PartMap
	closed bool

	pos       int64 // bytes consumed; a CR held back in pendingCR is not yet counted
	pendingCR bool  // the last byte written was CR: a terminator if LF follows

	// The current line.
	lineStart int64
	candOn    bool   // the line may still be a delimiter line
	cand      []byte // its first bytes, while candOn
	wspTail   int64  // whitespace after a full cand
	lastTerm  int    // terminator length of the line before

	reg    region
	frames []frame

	// The header being read.
	top      bool   // it is the message's own header
	hdr      []byte // its lines, each ended with CRLF
	hdrLine  int    // where the current line starts in hdr
	hdrRaw   int    // raw bytes of its lines, as counted against MaxHeaderBytes
	hdrStart int64
	path     string // the path of its part, "" for the message itself
	digest   bool   // its parent is multipart/digest
	replay   []byte
	hp       headerParser

	// The part being read (inBody, inOpaque).
	cur      int
	counting bool // its transfer encoding changes its size
	dec      transferDecoder
	decoded  int64
	heldTerm int // terminator of its last line, held back: it belongs to a delimiter that may follow
	scratch  []byte
}

// NewScanner returns a Scanner; zero Limits fields take the defaults.
func NewScanner(l Limits) *Scanner {
	s := &Scanner{lim: l.withDefaults(), top: true, cur: -1}
	s.pm.Parts = []Part{}
	s.startHeader("", false, 0)
	s.startLine()
	return s
}

// Scan reads r to its end into a PartMap. On a read error it returns the
// map of what was read and the error.
func Scan(r io.Reader, l Limits) (*PartMap, error) {
	s := NewScanner(l)
	_, err := io.Copy(s, r)
	pm := s.Close()
	if err != nil {
		return pm, fmt.Errorf("mime: scan: %w", err)
	}
	return pm, nil
}

// Write scans p. It always returns len(p), nil; writes after Close are
// ignored.
func (s *Scanner) Write(p []byte) (int, error) {
	n := len(p)
	if s.closed || n == 0 {
		return n, nil
	}
	if s.pendingCR {
		s.pendingCR = false
		if p[0] == '\n' {
			s.endLine(2)
			p = p[1:]
		} else {
			s.lineData(crByte)
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if p[len(p)-1] == '\r' {
				s.lineData(p[:len(p)-1])
				s.pendingCR = true
			} else {
				s.lineData(p)
			}
			break
		}
		if i > 0 && p[i-1] == '\r' {
			s.lineData(p[:i-1])
			s.endLine(2)
		} else {
			s.lineData(p[:i])
			s.endLine(1)
		}
		p = p[i+1:]
	}
	return n, nil
}

// Close ends the message and returns its PartMap. Every open part ends at
// the end of the message. Close may be called more than once.
func (s *Scanner) Close() *PartMap {
	if s.closed {
		return &s.pm
	}
	if s.pendingCR {
		s.pendingCR = false
		s.lineData(crByte)
	}
	if s.pos > s.lineStart {
		s.endLine(0)
	}
	s.endRegion(s.pos, true)
	for len(s.frames) > 0 && s.reg != inTail {
		s.popFrame(s.pos, false)
	}
	if s.reg == inTail {
		last := &s.pm.Parts[len(s.pm.Parts)-1]
		last.Length = s.pos - last.Offset
		last.DecodedSize = last.Length
	}
	s.pm.Size = s.pos
	s.closed = true
	s.hdr, s.replay, s.scratch, s.cand, s.frames = nil, nil, nil, nil, nil
	return &s.pm
}

// # Lines

func (s *Scanner) startLine() {
	s.lineStart = s.pos
	s.cand = s.cand[:0]
	s.wspTail = 0
	s.candOn = len(s.frames) > 0
}

// lineData takes bytes of the current line (no terminator).
func (s *Scanner) lineData(b []byte) {
	if len(b) == 0 {
		return
	}
	s.pos += int64(len(b))
	s.feedLine(b)
}

// feedLine passes line bytes on to the region, holding back the start of a
// line that may be a delimiter until it is known not to be one.
func (s *Scanner) feedLine(b []byte) {
	for len(b) > 0 {
		if !s.candOn {
			s.deliver(b)
			return
		}
		if len(s.cand) == 0 && b[0] != '-' {
			s.candOn = false
			continue
		}
		if len(s.cand) < candCap {
			n := min(candCap-len(s.cand), len(b))
			s.cand = append(s.cand, b[:n]...)
			b = b[n:]
			if !s.couldBeDelimiter() {
				s.dropCand()
			}
			continue
		}
		// A full cand that may be a delimiter: only padding may follow.
		i := 0
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		s.wspTail += int64(i)
		b = b[i:]
		if len(b) > 0 {
			s.dropCand()
		}
	}
}

// dropCand passes on the held-back start of a line that is no delimiter.
// Padding past cand is passed on as spaces: the same size, decoded or not.
func (s *Scanner) dropCand() {
	s.candOn = false
	s.deliver(s.cand)
	for s.wspTail > 0 {
		n := min(s.wspTail, int64(len(spaces)))
		s.deliver(spaces[:n])
		s.wspTail -= n
	}
}

// endLine ends the current line; term is the length of its terminator (0
// for an unterminated last line).
func (s *Scanner) endLine(term int) {
	s.pos += int64(term)
	s.finishLine(term)
	s.lastTerm = term
	s.startLine()
}

func (s *Scanner) finishLine(term int) {
	if s.candOn {
		if lvl, closing, ok := s.matchDelimiter(s.cand); ok {
			s.candOn = false
			s.delimiter(lvl, closing)
			return
		}
		s.dropCand()
	}
	switch s.reg {
	case inHeader:
		s.headerLineEnd(term)
	case inBody:
		if s.counting {
			if s.heldTerm > 0 {
				s.count(terminators[s.heldTerm])
			}
			s.heldTerm = term
		}
	}
}

// couldBeDelimiter reports whether cand is the start of a delimiter line of
// an open multipart.
func (s *Scanner) couldBeDelimiter() bool {
	c := s.cand
	for i := range s.frames {
		d := s.frames[i].dash
		if len(c) <= len(d) {
			if bytes.Equal(c, d[:len(c)]) {
				return true
			}
			continue
		}
		if bytes.HasPrefix(c, d) {
			if ok, _ := delimiterTail(c[len(d):], true); ok {
				return true
			}
		}
	}
	return false
}

// matchDelimiter finds the innermost open multipart that line (without its
// terminator, padding past candCap dropped) is a delimiter of.
func (s *Scanner) matchDelimiter(line []byte) (lvl int, closing, ok bool) {
	for i := len(s.frames) - 1; i >= 0; i-- {
		d := s.frames[i].dash
		if bytes.HasPrefix(line, d) {
			if ok, closing := delimiterTail(line[len(d):], false); ok {
				return i, closing, true
			}
		}
	}
	return 0, false, false
}

// delimiterTail reports whether rest, what follows "--boundary" on a line,
// makes it a delimiter (RFC 2046 5.1.1: transport padding) or a close
// delimiter ("--" and padding). With partial, rest may be cut short.
func delimiterTail(rest []byte, partial bool) (ok, closing bool) {
	if partial && len(rest) == 1 && rest[0] == '-' {
		return true, false
	}
	if len(rest) >= 2 && rest[0] == '-' && rest[1] == '-' {
		closing = true
		rest = rest[2:]
	}
	for _, c := range rest {
		if c != ' ' && c != '\t' {
			return false, false
		}
	}
	return true, closing
}

// # Regions

// deliver takes bytes of the current line that are not part of a delimiter.
func (s *Scanner) deliver(b []byte) {
	if len(b) == 0 {
		return
	}
	switch s.reg {
	case inHeader:
		if s.hdrRaw+len(b) > s.lim.MaxHeaderBytes {
			s.headerOverflow()
			return
		}
		s.hdr = append(s.hdr, b...)
		s.hdrRaw += len(b)
	case inBody:
		if s.counting {
			if s.heldTerm > 0 {
				s.count(terminators[s.heldTerm])
				s.heldTerm = 0
			}
			s.count(b)
		}
	}
}

func (s *Scanner) count(b []byte) {
	if s.scratch == nil {
		s.scratch = make([]byte, 0, countChunk+maxDecodeSlack)
	}
	for len(b) > 0 {
		n := min(len(b), countChunk)
		s.decoded += int64(len(s.dec.decode(s.scratch[:0], b[:n])))
		b = b[n:]
	}
}

func (s *Scanner) startHeader(path string, digest bool, start int64) {
	s.reg = inHeader
	s.hdr = s.hdr[:0]
	s.hdrLine = 0
	s.hdrRaw = 0
	s.hdrStart = start
	s.path = path
	s.digest = digest
}

// headerLineEnd ends a header line: a field or a continuation is kept, an
// empty line ends the header, and any other line ends it too and is the
// first line of the body.
func (s *Scanner) headerLineEnd(term int) {
	line := s.hdr[s.hdrLine:]
	if len(line) == 0 {
		s.endHeader(s.pos)
		return
	}
	if isHeaderLine(line, s.hdrLine == 0) {
		if s.hdrRaw+term > s.lim.MaxHeaderBytes {
			s.headerOverflow()
			return
		}
		s.hdrRaw += term
		s.hdr = append(s.hdr, '\r', '\n')
		s.hdrLine = len(s.hdr)
		return
	}
	s.replay = append(s.replay[:0], line...)
	s.hdr = s.hdr[:s.hdrLine]
	s.endHeader(s.lineStart)
	// Read the line again as the first line of what the header opened,
	// which may be a multipart whose first delimiter it is.
	s.cand = s.cand[:0]
	s.wspTail = 0
	s.candOn = len(s.frames) > 0
	s.feedLine(s.replay)
	s.finishLine(term)
}

// isHeaderLine reports whether line is a header field ("name:" with
// printable ASCII in the name, optionally followed by blanks) or, unless it
// is the first, a continuation line.
func isHeaderLine(line []byte, first bool) bool {
	if line[0] == ' ' || line[0] == '\t' {
		return !first
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// endHeader reads the header just ended and opens what it describes: a
// multipart, a leaf part or an opaque part, whose body starts at bodyStart.
func (s *Scanner) endHeader(bodyStart int64) {
	h := s.hp.parse(s.hdr[:s.hdrLine])
	if s.top {
		s.pm.Header = summarize(&h)
		s.top = false
	}
	pi := readPartInfo(&h)
	path := leafPath(s.path)
	mt := pi.mediaType
	if mt == "" {
		mt = "text/plain"
		if s.digest {
			mt = "message/rfc822"
		}
	}
	if strings.HasPrefix(mt, "multipart/") {
		switch {
		case !validBoundary(pi.boundary):
			s.openOpaque(path, bodyStart, "multipart without boundary")
		case len(s.frames) >= s.lim.MaxDepth:
			s.openOpaque(path, bodyStart, fmt.Sprintf("nesting depth over %d", s.lim.MaxDepth))
		default:
			s.frames = append(s.frames, frame{
				dash:      append([]byte("--"), pi.boundary...),
				path:      s.path,
				bodyStart: bodyStart,
				digest:    mt == "multipart/digest",
			})
			s.reg = inSkip
		}
		return
	}
	ok := s.addPart(Part{
		Path:             path,
		ContentType:      mt,
		Charset:          pi.charset,
		TransferEncoding: pi.encoding,
		Disposition:      pi.disposition,
		Filename:         pi.filename,
		Offset:           bodyStart,
	})
	if !ok {
		return
	}
	s.reg = inBody
	kind := decoderKind(pi.encoding)
	s.counting = kind != identity
	s.dec = transferDecoder{kind: kind}
	s.decoded = 0
	s.heldTerm = 0
}

// headerOverflow makes the part whose header is over MaxHeaderBytes opaque
// from the start of its header.
func (s *Scanner) headerOverflow() {
	if s.top {
		h := s.hp.parse(s.hdr[:s.hdrLine])
		s.pm.Header = summarize(&h)
		s.top = false
	}
	s.openOpaque(leafPath(s.path), s.hdrStart, fmt.Sprintf("header over %d bytes", s.lim.MaxHeaderBytes))
}

func (s *Scanner) openOpaque(path string, start int64, reason string) {
	s.setBroken(reason)
	if s.addPart(Part{Path: path, ContentType: octetStream, Offset: start}) {
		s.reg = inOpaque
	}
}

// delimiter handles a delimiter line of frame lvl: it ends the current
// region and any multipart nested in lvl, then opens the next part or, at
// a close delimiter, the epilogue.
func (s *Scanner) delimiter(lvl int, closing bool) {
	// RFC 2046: the line break before a delimiter belongs to it.
	end := max(0, s.lineStart-int64(s.lastTerm))
	s.endRegion(end, false)
	for s.reg != inTail && len(s.frames)-1 > lvl {
		s.popFrame(end, false)
	}
	if s.reg == inTail {
		return
	}
	if closing {
		s.popFrame(end, true)
		return
	}
	f := &s.frames[lvl]
	f.children++
	s.startHeader(childPath(f.path, f.children), f.digest, s.pos)
}

// endRegion ends the current region at end (at eof: the end of the message).
func (s *Scanner) endRegion(end int64, eof bool) {
	if s.reg == inHeader {
		// A header with no body.
		s.endHeader(max(s.hdrStart, end))
	}
	switch s.reg {
	case inBody:
		p := &s.pm.Parts[s.cur]
		p.Length = max(0, end-p.Offset)
		p.DecodedSize = p.Length
		if s.counting {
			if eof && s.heldTerm > 0 {
				s.count(terminators[s.heldTerm])
			}
			if s.scratch == nil {
				s.scratch = make([]byte, 0, countChunk+maxDecodeSlack)
			}
			s.decoded += int64(len(s.dec.finish(s.scratch[:0])))
			p.DecodedSize = s.decoded
			if s.dec.err() != nil {
				s.setBroken("bad base64 in part " + p.Path)
			}
		}
	case inOpaque:
		p := &s.pm.Parts[s.cur]
		p.Length = max(0, end-p.Offset)
		p.DecodedSize = p.Length
	case inTail:
		return
	}
	s.reg = inSkip
	s.cur = -1
	s.counting = false
	s.heldTerm = 0
}

// popFrame closes the innermost multipart at end. One that held no part
// becomes an opaque part itself.
func (s *Scanner) popFrame(end int64, closed bool) {
	f := s.frames[len(s.frames)-1]
	s.frames = s.frames[:len(s.frames)-1]
	if !closed {
		s.setBroken("unterminated multipart")
	}
	if f.children > 0 {
		return
	}
	s.setBroken("multipart without parts")
	n := max(0, end-f.bodyStart)
	s.addPart(Part{Path: leafPath(f.path), ContentType: octetStream, Offset: f.bodyStart, Length: n, DecodedSize: n})
}

// addPart records p, or, past MaxParts, turns the last part into the
// opaque rest of the message and stops reading structure.
func (s *Scanner) addPart(p Part) bool {
	if len(s.pm.Parts) >= s.lim.MaxParts {
		last := &s.pm.Parts[len(s.pm.Parts)-1]
		*last = Part{Index: last.Index, Path: last.Path, ContentType: octetStream, Offset: last.Offset}
		s.setBroken(fmt.Sprintf("more than %d parts", s.lim.MaxParts))
		s.reg = inTail
		s.frames = s.frames[:0]
		s.candOn = false
		s.counting = false
		return false
	}
	p.Index = len(s.pm.Parts)
	s.pm.Parts = append(s.pm.Parts, p)
	s.cur = p.Index
	return true
}

// setBroken records the first reason the structure could not be read.
func (s *Scanner) setBroken(reason string) {
	if s.pm.Broken == "" {
		s.pm.Broken = reason
	}
}

func leafPath(path string) string {
	if path == "" {
		return "1"
	}
	return path
}

func childPath(parent string, n int) string {
	if parent == "" {
		return strconv.Itoa(n)
	}
	return parent + "." + strconv.Itoa(n)
}
