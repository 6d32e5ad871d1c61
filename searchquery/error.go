package searchquery

import (
	"fmt"
	"unicode/utf8"
)

// Error is a malformed query: what is wrong (Msg) and where (Pos, a byte
// offset into the query; len(query) means at its end). Its Error text is
// meant for the body of an HTTP 400 and is valid UTF-8 whatever the query
// held.
type Error struct {
	Pos  int
	Msg  string
	Near string // up to nearBytes of the query from Pos; "" at the end
}

// nearBytes bounds the excerpt an Error carries.
const nearBytes = 16

func (e *Error) Error() string {
	if e.Near == "" {
		return fmt.Sprintf("searchquery: at byte %d (end of query): %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("searchquery: at byte %d (near %q): %s", e.Pos, e.Near, e.Msg)
}

// errorAt makes the Error for pos in q, with its excerpt cut on a rune
// boundary where the query has one near the cut (invalid UTF-8 may have
// none; %q in Error escapes it).
func errorAt(q string, pos int, msg string) *Error {
	end := min(pos+nearBytes, len(q))
	cut := end
	for cut > pos+1 && cut > end-utf8.UTFMax && cut < len(q) && !utf8.RuneStart(q[cut]) {
		cut--
	}
	if cut < len(q) && !utf8.RuneStart(q[cut]) {
		cut = end
	}
	return &Error{Pos: pos, Msg: msg, Near: q[pos:cut]}
}
