package searchquery

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits: the bounds every query is held to (see the package doc). A
// query that passes them costs the catalog at most MaxTerms token
// look-ups.
const (
	MaxQueryBytes = 2048    // bytes of query text, checked before anything else
	MaxTerms      = 64      // leaves of the tree: words, phrases, operators
	MaxDepth      = 16      // nesting of ( ), { } and operator groups
	MaxValueBytes = 256     // bytes of one word, phrase or operator value
	MinYear       = 1970    // after:/before: days, and the earliest any date resolves to
	MaxYear       = 9999    // ... and the latest
	MaxSizeBytes  = 1 << 40 // larger:/smaller: (1 TiB; K, M, G are binary: 1K = 1024)
	MaxAgeYears   = 100     // newer_than:/older_than: in any unit
)

// operator kinds: what the value after the colon is.
type opKind int

const (
	opTerm opKind = iota // a word or phrase for a token field
	opHas
	opAfter
	opBefore
	opNewer
	opOlder
	opLarger
	opSmaller
)

var operators = map[string]opKind{
	"from": opTerm, "to": opTerm, "cc": opTerm, "bcc": opTerm,
	"subject": opTerm, "filename": opTerm, "rfc822msgid": opTerm, "list": opTerm,
	"has":   opHas,
	"after": opAfter, "before": opBefore,
	"newer_than": opNewer, "older_than": opOlder,
	"larger": opLarger, "smaller": opSmaller,
}

// knownOperators is for error messages, in the order the docs give them.
const knownOperators = "from: to: cc: bcc: subject: filename: rfc822msgid: list: has:attachment " +
	"after: before: newer_than: older_than: larger: smaller:"

// Parse parses q into a tree. Relative dates (newer_than:, older_than:) are
// resolved against now. A malformed query, an empty one included, is an
// *Error; callers that treat an empty query as "no search" check for it
// before calling Parse.
func Parse(q string, now time.Time) (Node, error) {
	return parse(q, now, MaxQueryBytes)
}

// parse is Parse with the length bound as a parameter, so that a test can
// re-parse a canonical rendering (which may be longer than its source:
// subject:(a b) renders as subject:a subject:b).
func parse(q string, now time.Time, maxQuery int) (Node, error) {
	if len(q) > maxQuery {
		return nil, errorAt(q, maxQuery, fmt.Sprintf("query longer than %d bytes", maxQuery))
	}
	if err := checkText(q); err != nil {
		return nil, err
	}
	p := &parser{lx: lexer{q: q}, now: now.UTC()}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.and("")
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tokRParen:
		return nil, errorAt(q, p.tok.pos, "unmatched )")
	case tokRBrace:
		return nil, errorAt(q, p.tok.pos, "unmatched }")
	}
	if n == nil {
		return nil, errorAt(q, 0, "empty query")
	}
	return n, nil
}

// checkText refuses invalid UTF-8 and control characters other than tab,
// CR and LF (which separate words like spaces): none of them belongs in a
// search, and they would reach logs and the audit trail.
func checkText(q string) *Error {
	for i := 0; i < len(q); {
		r, size := utf8.DecodeRuneInString(q[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return errorAt(q, i, "not valid UTF-8")
		case unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r':
			return errorAt(q, i, fmt.Sprintf("control character %U not allowed", r))
		}
		i += size
	}
	return nil
}

type parser struct {
	lx    lexer
	tok   token // the next token, not yet consumed
	now   time.Time
	terms int
	depth int
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return errorAt(p.lx.q, pos, fmt.Sprintf(format, args...))
}

// leaf counts one more term against MaxTerms.
func (p *parser) leaf(pos int) error {
	p.terms++
	if p.terms > MaxTerms {
		return p.errorf(pos, "more than %d terms", MaxTerms)
	}
	return nil
}

// startsOperand says whether a token can begin a unary.
func startsOperand(k tokenKind) bool {
	switch k {
	case tokWord, tokPhrase, tokOp, tokMinus, tokLParen, tokLBrace:
		return true
	}
	return false
}

// and parses juxtaposed (or AND-joined) ors up to the end of the query or
// of the enclosing group, which it leaves unconsumed. group is the term
// operator a surrounding op:( ) applies to every word ("" outside one). It
// returns nil for an empty sequence: its caller knows what empty means.
func (p *parser) and(group string) (Node, error) {
	var items []Node
	for {
		switch p.tok.kind {
		case tokEOF, tokRParen, tokRBrace:
			return andOf(items), nil
		case tokAnd:
			and := p.tok
			if len(items) == 0 {
				return nil, p.errorf(and.pos, "AND needs a term on its left")
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			if !startsOperand(p.tok.kind) {
				return nil, p.errorf(and.pos, "AND needs a term on its right")
			}
			continue
		case tokOr:
			return nil, p.errorf(p.tok.pos, "OR needs a term on its left")
		}
		n, err := p.or(group)
		if err != nil {
			return nil, err
		}
		items = append(items, n)
	}
}

func (p *parser) or(group string) (Node, error) {
	first, err := p.unary(group)
	if err != nil {
		return nil, err
	}
	alts := []Node{first}
	for p.tok.kind == tokOr {
		or := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !startsOperand(p.tok.kind) {
			return nil, p.errorf(or.pos, "%s needs a term on its right", or.text)
		}
		n, err := p.unary(group)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	return orOf(alts), nil
}

func (p *parser) unary(group string) (Node, error) {
	if p.tok.kind != tokMinus {
		return p.primary(group)
	}
	minus := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.pos != minus.end || !startsOperand(p.tok.kind) || p.tok.kind == tokMinus {
		return nil, p.errorf(minus.pos, "- must be followed directly by a word, phrase, operator or group")
	}
	n, err := p.primary(group)
	if err != nil {
		return nil, err
	}
	return Not{Node: n}, nil
}

func (p *parser) primary(group string) (Node, error) {
	t := p.tok
	switch t.kind {
	case tokWord, tokPhrase:
		phrase := t.kind == tokPhrase
		if err := p.checkValue(t.text, t.pos, phrase); err != nil {
			return nil, err
		}
		if err := p.leaf(t.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return Term{Op: group, Value: t.text, Phrase: phrase, Pos: t.pos}, nil
	case tokOp:
		return p.operator(group)
	case tokLParen:
		return p.parens(group)
	case tokLBrace:
		return p.braces(group)
	}
	return nil, p.errorf(t.pos, "expected a word, phrase, operator or group")
}

// enter and leave bound the nesting of groups.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf(pos, "groups nested deeper than %d", MaxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// closeGroup consumes the closer of the group opened at open, or says why
// it is missing.
func (p *parser) closeGroup(open token, want tokenKind, closer string) error {
	switch p.tok.kind {
	case want:
		p.leave()
		return p.advance()
	case tokEOF:
		return p.errorf(open.pos, "unclosed %s: no %s before the end of the query", open.text, closer)
	}
	return p.errorf(p.tok.pos, "%s does not close the %s at byte %d", p.tok.text, open.text, open.pos)
}

func (p *parser) parens(group string) (Node, error) {
	open := p.tok
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.and(group)
	if err != nil {
		return nil, err
	}
	if n == nil && p.tok.kind == tokRParen {
		return nil, p.errorf(open.pos, "empty ( )")
	}
	if err := p.closeGroup(open, tokRParen, ")"); err != nil {
		return nil, err
	}
	return n, nil
}

// braces parses {a b c}, Gmail's list of alternatives: a OR b OR c.
func (p *parser) braces(group string) (Node, error) {
	open := p.tok
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var alts []Node
loop:
	for {
		switch p.tok.kind {
		case tokEOF, tokRParen, tokRBrace:
			break loop
		case tokAnd:
			return nil, p.errorf(p.tok.pos, "AND inside { }: braces list alternatives; use ( ) to require every term")
		case tokOr:
			return nil, p.errorf(p.tok.pos, "%s needs a term on its left", p.tok.text)
		}
		n, err := p.or(group)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	if len(alts) == 0 && p.tok.kind == tokRBrace {
		return nil, p.errorf(open.pos, "empty { }")
	}
	if err := p.closeGroup(open, tokRBrace, "}"); err != nil {
		return nil, err
	}
	return orOf(alts), nil
}

// operator parses name:value, name:"phrase", name:( ) or name:{ }.
func (p *parser) operator(group string) (Node, error) {
	op := p.tok
	name := op.text
	if group != "" {
		return nil, p.errorf(op.pos, "%s: inside %s:( ): a group after an operator holds only words and phrases", name, group)
	}
	kind, known := operators[name]
	if !known {
		return nil, p.errorf(op.pos, "unknown operator %s: (known: %s; to search for the text, put it in quotes)", name, knownOperators)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	val, valPos, phrase := op.val, op.valPos, false
	if val == "" {
		next := p.tok
		switch {
		case next.pos != op.end:
			return nil, p.errorf(op.pos, "%s: needs a value right after the colon", name)
		case next.kind == tokPhrase:
			val, valPos, phrase = next.text, next.pos, true
			if err := p.advance(); err != nil {
				return nil, err
			}
		case next.kind == tokLParen || next.kind == tokLBrace:
			if kind != opTerm {
				return nil, p.errorf(next.pos, "%s: takes one value, not a group", name)
			}
			if next.kind == tokLParen {
				return p.parens(name)
			}
			return p.braces(name)
		default:
			return nil, p.errorf(op.pos, "%s: needs a value right after the colon", name)
		}
	}
	if err := p.checkValue(val, valPos, phrase); err != nil {
		return nil, err
	}
	if err := p.leaf(op.pos); err != nil {
		return nil, err
	}
	if kind == opTerm {
		return Term{Op: name, Value: val, Phrase: phrase, Pos: op.pos}, nil
	}
	n, msg := operatorValue(kind, name, val, p.now)
	if msg != "" {
		return nil, p.errorf(valPos, "%s", msg)
	}
	return n, nil
}

// checkValue bounds a word, phrase or operator value. A phrase of nothing
// but spaces has no word to match and would match everything.
func (p *parser) checkValue(val string, pos int, phrase bool) error {
	if len(val) > MaxValueBytes {
		return p.errorf(pos, "value longer than %d bytes", MaxValueBytes)
	}
	if phrase && strings.TrimFunc(val, unicode.IsSpace) == "" {
		return p.errorf(pos, "empty phrase")
	}
	return nil
}

// andOf and orOf build a node from a sequence, flattening nested nodes of
// the same kind (their meaning does not change) and unwrapping one item.
func andOf(items []Node) Node {
	var flat []Node
	for _, n := range items {
		if a, ok := n.(And); ok {
			flat = append(flat, a.Nodes...)
		} else {
			flat = append(flat, n)
		}
	}
	switch len(flat) {
	case 0:
		return nil
	case 1:
		return flat[0]
	}
	return And{Nodes: flat}
}

func orOf(items []Node) Node {
	var flat []Node
	for _, n := range items {
		if o, ok := n.(Or); ok {
			flat = append(flat, o.Nodes...)
		} else {
			flat = append(flat, n)
		}
	}
	switch len(flat) {
	case 0:
		return nil
	case 1:
		return flat[0]
	}
	return Or{Nodes: flat}
}
