package blind

import (
	"bufio"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // registers the charset decoders go-message uses for text parts and headers
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/mailvault/mailvaultd/archive"
)

// Limits bound the work and memory of one extraction. Past a bound the
// extractor stops taking terms (Result.Capped) or stops reading structure
// (Summary.Broken); the rest of the message is consumed and dropped, never
// buffered.
type Limits struct {
	MaxTokens      int   // distinct tokens per message (default 20,000)
	MaxPartTokens  int   // distinct tokens one part (or the header) may add (default 10,000)
	MaxDepth       int   // multipart nesting depth (default 16)
	MaxParts       int   // parts read, leaves and multiparts (default 500)
	MaxHeaderBytes int   // bytes of one header block (default 64 KiB)
	MaxPartText    int64 // decoded text bytes of one body part taken for words (default 1 MiB)
	MaxText        int64 // decoded text bytes of all body parts taken for words (default 4 MiB)
}

// DefaultLimits are the limits a zero Limits field takes.
func DefaultLimits() Limits {
	return Limits{
		MaxTokens:      20000,
		MaxPartTokens:  10000,
		MaxDepth:       16,
		MaxParts:       500,
		MaxHeaderBytes: 64 << 10,
		MaxPartText:    1 << 20,
		MaxText:        4 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxTokens <= 0 {
		l.MaxTokens = d.MaxTokens
	}
	if l.MaxPartTokens <= 0 {
		l.MaxPartTokens = d.MaxPartTokens
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxPartText <= 0 {
		l.MaxPartText = d.MaxPartText
	}
	if l.MaxText <= 0 {
		l.MaxText = d.MaxText
	}
	return l
}

// Bounds of the summary: it is sealed into every catalog row, so it stays
// small whatever the message holds.
const (
	maxSummaryString = 512  // each display string
	maxSummaryType   = 127  // an attachment's content type
	maxAttachments   = 64   // attachments listed
	maxAddresses     = 1000 // addresses indexed per message, headers and envelope each
)

// Attachment is one attachment as the summary lists it.
type Attachment struct {
	Name string `json:"name,omitempty"`
	Type string `json:"type"`
	Size int64  `json:"size"` // decoded bytes
}

// Summary is what a search result shows without opening the message: the
// catalog seals it. Every string is cut to 512 bytes (at a rune boundary)
// and at most 64 attachments are listed. It is filled whatever Fields
// says: it is sealed, not indexed.
type Summary struct {
	From      string `json:"from,omitempty"` // display values, RFC 2047-decoded
	To        string `json:"to,omitempty"`
	Cc        string `json:"cc,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Date      string `json:"date,omitempty"` // the Date header as written
	MessageID string `json:"message_id,omitempty"`
	ListID    string `json:"list_id,omitempty"`

	Attachments        []Attachment `json:"attachments,omitempty"`
	AttachmentsOmitted int          `json:"attachments_omitted,omitempty"` // past the 64 listed
	HasAttachment      bool         `json:"has_attachment,omitempty"`
	// Broken is the first structural problem met (the MIME could not be
	// read in full); empty when it was.
	Broken string `json:"broken,omitempty"`
}

// Result is one message's extraction.
type Result struct {
	Tokens  []Token // distinct, ascending
	Summary Summary
	// Capped says some terms were not indexed: a token cap or a text cap
	// was reached. The message is findable by what was indexed.
	Capped bool
}

// An Extractor turns one message into its tokens and summary as the
// message streams past. Write it the raw message bytes in any chunks, call
// Envelope (best before the first Write: envelope terms then go in before
// any cap can be reached), then Finish once. Write, Envelope and Finish are
// for one goroutine; an Extractor that is not finished must be aborted
// (Abort), or its parsing goroutine waits for input forever.
//
// Write never fails and never keeps the caller beyond the time to parse
// the chunk: broken or hostile input stops the parse, after which Write
// drops what it is given. Memory is bounded by Limits, not by the message.
type Extractor struct {
	p       *parser
	pw      *io.PipeWriter
	pr      *io.PipeReader
	done    chan struct{}
	started bool
	ended   bool

	envFrom string
	envTo   []string
	envSent bool // the envelope went to the parser before the message
}

var _ io.Writer = (*Extractor)(nil)

// NewExtractor returns an extractor that computes tokens under k (which it
// copies: k may be cleared once NewExtractor returns).
func NewExtractor(k *Key, l Limits, f Fields) *Extractor {
	l = l.withDefaults()
	pr, pw := io.Pipe()
	return &Extractor{
		p: &parser{
			mac:    k.mac(),
			lim:    l,
			fields: f,
			seen:   make(map[string]struct{}),
			tokens: make(map[Token]struct{}),
			party:  make(map[Token]struct{}),
			rcpts:  make(map[string]bool),
		},
		pw:   pw,
		pr:   pr,
		done: make(chan struct{}),
	}
}

// Envelope records the envelope sender and recipients.
func (x *Extractor) Envelope(from string, to []string) {
	x.envFrom = from
	x.envTo = slices.Clone(to[:min(len(to), maxAddresses)])
}

// Write feeds the next bytes of the raw message. It always reports all of
// p written and a nil error.
func (x *Extractor) Write(p []byte) (int, error) {
	if x.ended {
		return len(p), nil
	}
	x.start()
	// An error means the parser stopped reading (the structure ended, or
	// a bound was reached): the rest is not needed.
	_, _ = x.pw.Write(p)
	return len(p), nil
}

func (x *Extractor) start() {
	if x.started {
		return
	}
	x.started = true
	if x.envFrom != "" || len(x.envTo) > 0 {
		x.envSent = true
		x.p.envelope(x.envFrom, x.envTo)
	}
	go x.p.run(x.pr, x.done)
}

// Finish ends the message and returns its result. The error is not nil
// only if the parser failed in an unforeseen way (a bug): the result then
// holds what was extracted before the failure, and is still usable.
func (x *Extractor) Finish() (Result, error) {
	if x.ended {
		return Result{}, errors.New("blind: extractor finished twice")
	}
	x.start()
	x.ended = true
	x.pw.Close()
	<-x.done
	p := x.p
	if !x.envSent {
		p.envelope(x.envFrom, x.envTo)
	}
	p.blindCopies(x.envTo)
	res := Result{Summary: p.sum, Capped: p.capped}
	res.Tokens = make([]Token, 0, len(p.tokens)+len(p.party))
	for t := range p.tokens {
		res.Tokens = append(res.Tokens, t)
	}
	for t := range p.party {
		if _, dup := p.tokens[t]; !dup {
			res.Tokens = append(res.Tokens, t)
		}
	}
	slices.Sort(res.Tokens)
	var err error
	if p.panicked != nil {
		err = fmt.Errorf("blind: extract: %v", p.panicked)
	}
	// Drop the plaintext terms as soon as they are not needed.
	clear(p.seen)
	p.seen, p.tokens, p.party = nil, nil, nil
	return res, err
}

// Abort ends an extraction whose result is not wanted (the delivery
// failed) and releases its goroutine.
func (x *Extractor) Abort() {
	if x.ended {
		return
	}
	x.ended = true
	if x.started {
		x.pw.CloseWithError(errAborted)
		<-x.done
	}
	clear(x.p.seen)
}

var (
	errAborted      = errors.New("blind: extraction aborted")
	errParseEnded   = errors.New("blind: parse ended")
	errHeaderTooBig = errors.New("header over the limit")
)

// parser is the extractor's state, owned by the parsing goroutine from the
// first Write until Finish has seen it end.
type parser struct {
	n      normaliser
	mac    hash.Hash
	lim    Limits
	fields Fields

	seen      map[string]struct{} // field\x00term of every token added
	tokens    map[Token]struct{}
	party     map[Token]struct{} // FieldParty: outside the caps
	partAdded int                // tokens added by the current part
	capped    bool

	textUsed  int64
	parts     int
	addresses int
	rcpts     map[string]bool // normalised To/Cc header addresses: the other envelope recipients are Bcc

	sum      Summary
	panicked any
}

func (p *parser) run(r *io.PipeReader, done chan<- struct{}) {
	defer close(done)
	// Whatever ends the parse, later Writes must return at once.
	defer r.CloseWithError(errParseEnded)
	defer func() {
		if v := recover(); v != nil {
			p.panicked = v
			p.broken("internal error")
		}
	}()
	p.message(r)
}

// add records the token of term in f, within the caps.
func (p *parser) add(f Field, term string) {
	if term == "" {
		return
	}
	key := string(f) + "\x00" + term
	if _, ok := p.seen[key]; ok {
		return
	}
	if p.full() {
		p.capped = true
		return
	}
	p.seen[key] = struct{}{}
	p.partAdded++
	p.tokens[tokenOf(p.mac, f, term)] = struct{}{}
}

// full says no new token may be added to the current part.
func (p *parser) full() bool {
	return len(p.tokens) >= p.lim.MaxTokens || p.partAdded >= p.lim.MaxPartTokens
}

func (p *parser) broken(reason string) {
	if p.sum.Broken == "" {
		p.sum.Broken = reason
	}
}

// envelope indexes the envelope: the sender as a From address, every
// recipient as a To address.
func (p *parser) envelope(from string, to []string) {
	p.partyTokens(from, to)
	if !p.fields.Addresses {
		return
	}
	p.partAdded = 0
	if from != "" {
		p.n.addressTerms(FieldFrom, from, "", p.add)
	}
	for _, a := range to {
		p.n.addressTerms(FieldTo, a, "", p.add)
	}
}

// blindCopies indexes, once the header is read, the envelope recipients
// that are in neither its To nor its Cc as Bcc addresses.
func (p *parser) blindCopies(to []string) {
	if !p.fields.Addresses {
		return
	}
	p.partAdded = 0
	for _, a := range to {
		if !p.rcpts[archive.NormalizeAddress(a)] {
			p.n.addressTerms(FieldBcc, a, "", p.add)
		}
	}
}

// partyTokens are the envelope's normalised addresses in FieldParty,
// always indexed and outside the caps: reader isolation matches on them.
func (p *parser) partyTokens(from string, to []string) {
	for _, a := range append([]string{from}, to...) {
		if n := archive.NormalizeAddress(a); n != "" {
			p.party[tokenOf(p.mac, FieldParty, n)] = struct{}{}
		}
	}
}

// message reads the top-level header and the body.
func (p *parser) message(r io.Reader) {
	budget := &budgetReader{r: r, n: int64(p.lim.MaxHeaderBytes)}
	br := bufio.NewReader(budget)
	h, err := textproto.ReadHeader(br)
	budget.n = unlimited
	p.header(message.Header{Header: h})
	if err != nil {
		// The fields read before the fault are indexed; without the end
		// of the header there is no telling where the body starts.
		p.broken(headerProblem(err))
		return
	}
	e, _ := message.New(message.Header{Header: h}, br) // an unknown charset or encoding still reads, raw
	p.entity(e, 0)
}

func headerProblem(err error) string {
	if errors.Is(err, errHeaderTooBig) {
		return "header over the limit"
	}
	return "malformed header"
}

// header indexes the top-level header and fills the summary from it.
func (p *parser) header(h message.Header) {
	p.partAdded = 0
	text := func(k string) string {
		v, _ := h.Text(k) // undecodable: the raw value
		return capBytes(strings.TrimSpace(v), maxSummaryString)
	}
	p.sum.From, p.sum.To, p.sum.Cc = text("From"), text("To"), text("Cc")
	p.sum.Subject, p.sum.Date = text("Subject"), text("Date")
	p.sum.MessageID = capBytes(strings.TrimSpace(h.Get("Message-Id")), maxSummaryString)
	p.sum.ListID = text("List-Id")

	if id := msgIDTerm(h.Get("Message-Id")); id != "" {
		p.add(FieldMsgID, id)
	}
	if p.fields.Addresses {
		for _, hf := range []struct {
			key    string
			fields []Field
		}{
			{"From", []Field{FieldFrom}},
			{"To", []Field{FieldTo}},
			{"Cc", []Field{FieldCc, FieldTo}},
			{"Bcc", []Field{FieldBcc, FieldTo}},
			{"Reply-To", []Field{FieldReplyTo}},
		} {
			for _, a := range p.addressList(h, hf.key) {
				for _, f := range hf.fields {
					p.n.addressTerms(f, a.Address, a.Name, p.add)
				}
				if hf.key == "To" || hf.key == "Cc" {
					p.rcpts[archive.NormalizeAddress(a.Address)] = true
				}
			}
		}
		if id := listIDTerm(h.Get("List-Id")); id != "" {
			p.add(FieldListID, id)
		}
	}
	if p.fields.Subject {
		subject, _ := h.Text("Subject")
		p.n.wordsAndPieces(FieldSubject, subject, p.add)
	}
}

// addressList parses one address header, leniently when it is not valid
// RFC 5322, within the per-message address cap.
func (p *parser) addressList(h message.Header, key string) []*mail.Address {
	v := h.Get(key)
	if v == "" || p.addresses >= maxAddresses {
		return nil
	}
	list, err := mail.ParseAddressList(v)
	if err != nil {
		list = lenientAddresses(v)
	}
	list = list[:min(len(list), maxAddresses-p.addresses)]
	p.addresses += len(list)
	return list
}

// lenientAddresses reads what looks like addresses out of a header that
// net/mail rejects: each comma-separated item is `name <addr>`, a bare
// address, or only a name.
func lenientAddresses(v string) []*mail.Address {
	var out []*mail.Address
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		a := &mail.Address{}
		if open := strings.LastIndexByte(item, '<'); open >= 0 && strings.IndexByte(item[open:], '>') > 0 {
			a.Address = item[open+1 : open+strings.IndexByte(item[open:], '>')]
			a.Name = strings.Trim(item[:open], " \t\"")
		} else if strings.Contains(item, "@") {
			a.Address = item
		} else {
			a.Name = item
		}
		if a.Address != "" || a.Name != "" {
			out = append(out, a)
		}
	}
	return out
}

// entity reads one entity (the message or a part) and returns true when
// the parse must stop altogether (too many parts).
func (p *parser) entity(e *message.Entity, depth int) (stop bool) {
	p.parts++
	mt, params, err := e.Header.ContentType()
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(e.Header.Get("Content-Type"))), ";")
		mt = strings.TrimSpace(mt)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		p.leaf(e, mt)
		return false
	}
	if depth >= p.lim.MaxDepth {
		p.broken("multipart nested too deep")
		return false
	}
	boundary := params["boundary"]
	if boundary == "" {
		p.broken("multipart without a boundary")
		return false
	}
	// A part's header is read by the multipart reader; the budget bounds
	// it (and the preamble before the first part) while it is read.
	budget := &budgetReader{r: e.Body, n: unlimited}
	mr := textproto.NewMultipartReader(budget, boundary)
	var prev *textproto.Part
	for {
		if p.parts >= p.lim.MaxParts {
			p.broken("too many parts")
			return true
		}
		if prev != nil {
			// Drain the previous part outside the budget.
			if _, err := io.Copy(io.Discard, prev); err != nil {
				p.broken("unterminated part")
				return false
			}
		}
		budget.n = int64(p.lim.MaxHeaderBytes) + headerSlack
		part, err := mr.NextPart()
		budget.n = unlimited
		if err == io.EOF {
			return false
		}
		if err != nil {
			p.broken("malformed multipart")
			return false
		}
		prev = part
		child, _ := message.New(message.Header{Header: part.Header}, part)
		if p.entity(child, depth+1) {
			return true
		}
	}
}

// headerSlack is what the multipart reader may read past a part's header
// (the delimiter line, its buffer's read-ahead) and the preamble it skips.
const headerSlack = 64 << 10

// leaf reads one leaf part: an attachment's name, type and size, or a
// body part's words.
func (p *parser) leaf(e *message.Entity, mt string) {
	p.partAdded = 0
	ah := mail.AttachmentHeader{Header: e.Header}
	name, _ := ah.Filename()
	disp, _, _ := e.Header.ContentDisposition()
	if name != "" || strings.EqualFold(disp, "attachment") {
		// The same rule as the web page's attachment list.
		size, _ := io.Copy(io.Discard, e.Body)
		p.sum.HasAttachment = true
		if len(p.sum.Attachments) < maxAttachments {
			p.sum.Attachments = append(p.sum.Attachments, Attachment{
				Name: capBytes(name, maxSummaryString),
				Type: capBytes(mt, maxSummaryType),
				Size: size,
			})
		} else {
			p.sum.AttachmentsOmitted++
		}
		if p.fields.Attachments && name != "" {
			p.n.filenameTerms(name, p.add)
		}
		return
	}
	if !p.fields.Body || (mt != "text/plain" && mt != "text/html") {
		return
	}
	limit := min(p.lim.MaxPartText, p.lim.MaxText-p.textUsed)
	if limit <= 0 {
		p.capped = true
		return
	}
	lr := &io.LimitedReader{R: e.Body, N: limit}
	sink := wordSink{p: p}
	if mt == "text/html" {
		htmlText(lr, sink.writeString)
	} else {
		buf := make([]byte, 4096)
		for {
			n, err := lr.Read(buf)
			sink.write(buf[:n])
			if err != nil {
				break
			}
		}
	}
	sink.flush()
	p.textUsed += limit - lr.N
	if lr.N == 0 {
		// Cut at the cap: flag it if there was more.
		if n, _ := e.Body.Read(make([]byte, 1)); n > 0 {
			p.capped = true
		}
	}
}

// wordSink takes a part's text in chunks and indexes its words, cutting the
// stream only at white space so that no word is split between chunks.
type wordSink struct {
	p   *parser
	buf []byte
}

const (
	sinkChunk = 4 << 10 // text is segmented in chunks of about this size
	sinkMax   = 8 << 10 // a chunk with no white space is cut here
)

func (s *wordSink) writeString(t string) { s.write([]byte(t)) }

func (s *wordSink) write(b []byte) {
	for len(b) > 0 {
		n := min(len(b), sinkMax-len(s.buf))
		s.buf = append(s.buf, b[:n]...)
		b = b[n:]
		if len(s.buf) < sinkChunk {
			continue
		}
		cut := lastSpace(s.buf)
		if cut < 0 {
			if len(s.buf) < sinkMax {
				continue
			}
			cut = len(s.buf)
			for cut > 0 && s.buf[cut-1]&0xC0 == 0x80 {
				cut-- // inside a rune
			}
			if cut > 0 && s.buf[cut-1] >= 0xC0 {
				cut-- // a lead byte whose rune is cut
			}
			if cut == 0 {
				cut = len(s.buf)
			}
		}
		s.index(s.buf[:cut])
		s.buf = append(s.buf[:0], s.buf[cut:]...)
	}
}

func (s *wordSink) flush() {
	s.index(s.buf)
	s.buf = s.buf[:0]
}

func (s *wordSink) index(b []byte) {
	if len(b) == 0 {
		return
	}
	if s.p.full() {
		// Nothing more can be added: skip the segmentation, not the
		// reading.
		s.p.capped = true
		return
	}
	s.p.n.wordsAndPieces(FieldBody, string(b), s.p.add)
}

// lastSpace is the index just after the last ASCII white space in b, or -1.
func lastSpace(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\r', '\n', '\f', '\v':
			return i + 1
		}
	}
	return -1
}

// budgetReader fails once n bytes have been read through it, while n is
// not unlimited: it bounds a header that go-message would otherwise read
// whole into memory.
type budgetReader struct {
	r io.Reader
	n int64
}

const unlimited = -1

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n == unlimited {
		return b.r.Read(p)
	}
	if b.n <= 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}
