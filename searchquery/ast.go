package searchquery

import "time"

// Node is a parsed query.
type Node interface{ node() }

// And matches what every one of Nodes matches (juxtaposition: "a b").
type And struct{ Nodes []Node }

// Or matches what any one of Nodes matches ("a OR b", "{a b}").
type Or struct{ Nodes []Node }

// Not matches what Node does not match ("-a").
type Not struct{ Node Node }

// Term is a word, a quoted phrase or an operator with a value.
type Term struct {
	// Op is "" for a bare word or phrase (subject, body or file name), or
	// one of "from", "to", "cc", "bcc", "subject", "filename",
	// "rfc822msgid", "list".
	Op     string
	Value  string // as typed, quotes removed
	Phrase bool   // the value was quoted
	Pos    int    // byte offset of the term in the query
}

// Has is "has:attachment".
type Has struct{ What string }

// Date is "after:", "before:" (a calendar day, UTC) or "newer_than:",
// "older_than:" (resolved against the parse time): After is an inclusive
// lower bound, Before an exclusive upper bound; one of them is zero.
type Date struct{ After, Before time.Time }

// Size is "larger:" (Min, inclusive) or "smaller:" (Max, exclusive), in
// bytes; the other is zero.
type Size struct{ Min, Max int64 }

func (And) node()  {}
func (Or) node()   {}
func (Not) node()  {}
func (Term) node() {}
func (Has) node()  {}
func (Date) node() {}
func (Size) node() {}
