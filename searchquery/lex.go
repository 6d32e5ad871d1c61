package searchquery

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF    tokenKind = iota
	tokWord             // a bare word that is none of the below
	tokPhrase           // "...": text is what is between the quotes
	tokOp               // name: — text is the lower-cased name, val what follows the colon in the same word
	tokMinus            // a "-" where a word would start
	tokOr               // OR or |
	tokAnd              // AND
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
)

type token struct {
	kind     tokenKind
	pos, end int // byte offsets of the token in the query
	text     string
	val      string // tokOp only
	valPos   int    // tokOp only
}

// lexer cuts a query into tokens on demand. It assumes the query has
// passed checkText (no control characters, valid UTF-8).
type lexer struct {
	q   string
	pos int
}

// isDelim says whether r ends a bare word. Everything else, "-" and ":"
// included, is part of the word it appears in.
func isDelim(r rune) bool {
	switch r {
	case '(', ')', '{', '}', '"', '|':
		return true
	}
	return unicode.IsSpace(r)
}

func (lx *lexer) next() (token, *Error) {
	for lx.pos < len(lx.q) {
		r, size := utf8.DecodeRuneInString(lx.q[lx.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		lx.pos += size
	}
	start := lx.pos
	if start == len(lx.q) {
		return token{kind: tokEOF, pos: start, end: start}, nil
	}
	single := func(k tokenKind) (token, *Error) {
		lx.pos++
		return token{kind: k, pos: start, end: lx.pos, text: lx.q[start:lx.pos]}, nil
	}
	switch lx.q[start] {
	case '(':
		return single(tokLParen)
	case ')':
		return single(tokRParen)
	case '{':
		return single(tokLBrace)
	case '}':
		return single(tokRBrace)
	case '|':
		return single(tokOr)
	case '-':
		return single(tokMinus)
	case '"':
		n := strings.IndexByte(lx.q[start+1:], '"')
		if n < 0 {
			return token{}, errorAt(lx.q, start, "unterminated quote: a phrase needs a closing \"")
		}
		lx.pos = start + 1 + n + 1
		return token{kind: tokPhrase, pos: start, end: lx.pos, text: lx.q[start+1 : start+1+n]}, nil
	}
	end := start
	for end < len(lx.q) {
		r, size := utf8.DecodeRuneInString(lx.q[end:])
		if isDelim(r) {
			break
		}
		end += size
	}
	lx.pos = end
	word := lx.q[start:end]
	t := token{kind: tokWord, pos: start, end: end, text: word}
	switch word {
	case "OR":
		t.kind = tokOr
	case "AND":
		t.kind = tokAnd
	default:
		if name, val, ok := strings.Cut(word, ":"); ok && isOperatorName(name) {
			t.kind, t.text, t.val, t.valPos = tokOp, asciiLower(name), val, start+len(name)+1
		}
	}
	return t, nil
}

// isOperatorName says whether a word's part before its first colon has the
// shape of an operator name: an ASCII letter, then ASCII letters, digits or
// underscores. "10:30" and "a.b:c" are words; "foo:bar" is an operator,
// known or not.
func isOperatorName(s string) bool {
	if s == "" || !isASCIILetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isASCIILetter(c) && !('0' <= c && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// asciiLower folds ASCII letters only: operator names are ASCII, and a
// Unicode fold would let "K" (Kelvin sign) or "ſ" spell one.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
