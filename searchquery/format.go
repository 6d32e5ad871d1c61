package searchquery

import (
	"strconv"
	"strings"
	"time"
)

// Format renders a tree as its canonical query: Parse(Format(n)) gives n
// back (term positions aside) for every tree Parse returns. Groups are
// written out (subject:(a b) as subject:a subject:b, {a b} as a OR b),
// relative dates as the time they resolved to, sizes in bytes.
func Format(n Node) string {
	var b strings.Builder
	writeNode(&b, n, inTop)
	return b.String()
}

func (n And) String() string  { return Format(n) }
func (n Or) String() string   { return Format(n) }
func (n Not) String() string  { return Format(n) }
func (n Term) String() string { return Format(n) }
func (n Has) String() string  { return Format(n) }
func (n Date) String() string { return Format(n) }
func (n Size) String() string { return Format(n) }

// where says what a node is written inside of, which decides whether it
// needs parentheses: OR binds tighter than juxtaposition, "-" tightest.
type where int

const (
	inTop where = iota
	inAnd
	inOr
	inNot
)

func writeNode(b *strings.Builder, n Node, w where) {
	switch n := n.(type) {
	case And:
		// And inside And is never built by Parse (it flattens), but a
		// hand-built one keeps its grouping.
		wrap := w != inTop
		writeList(b, n.Nodes, " ", inAnd, wrap)
	case Or:
		wrap := w == inOr || w == inNot
		writeList(b, n.Nodes, " OR ", inOr, wrap)
	case Not:
		if w == inNot {
			b.WriteByte('(')
		}
		b.WriteByte('-')
		writeNode(b, n.Node, inNot)
		if w == inNot {
			b.WriteByte(')')
		}
	case Term:
		writeTerm(b, n)
	case Has:
		b.WriteString("has:")
		b.WriteString(n.What)
	case Date:
		switch {
		case !n.After.IsZero() && !n.Before.IsZero():
			wrap := w != inTop && w != inAnd
			writeList(b, []Node{Date{After: n.After}, Date{Before: n.Before}}, " ", inAnd, wrap)
		case !n.Before.IsZero():
			b.WriteString("before:")
			b.WriteString(formatTime(n.Before))
		default:
			b.WriteString("after:")
			b.WriteString(formatTime(n.After))
		}
	case Size:
		switch {
		case n.Min != 0 && n.Max != 0:
			wrap := w != inTop && w != inAnd
			writeList(b, []Node{Size{Min: n.Min}, Size{Max: n.Max}}, " ", inAnd, wrap)
		case n.Max != 0:
			b.WriteString("smaller:")
			b.WriteString(strconv.FormatInt(n.Max, 10))
		default:
			b.WriteString("larger:")
			b.WriteString(strconv.FormatInt(n.Min, 10))
		}
	}
}

func writeList(b *strings.Builder, nodes []Node, sep string, w where, wrap bool) {
	if wrap {
		b.WriteByte('(')
	}
	for i, n := range nodes {
		if i > 0 {
			b.WriteString(sep)
		}
		writeNode(b, n, w)
	}
	if wrap {
		b.WriteByte(')')
	}
}

func writeTerm(b *strings.Builder, t Term) {
	if t.Op != "" {
		b.WriteString(t.Op)
		b.WriteByte(':')
	}
	if !t.Phrase && isBare(t.Value, t.Op == "") {
		b.WriteString(t.Value)
		return
	}
	// A value holding a quote cannot come from Parse and cannot be
	// written; it is written as typed rather than lost.
	b.WriteByte('"')
	b.WriteString(t.Value)
	b.WriteByte('"')
}

// isBare says whether a value can be written without quotes and read back
// as the same word. A bare word (no operator) must also not read as "-",
// OR, AND or an operator.
func isBare(v string, word bool) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if isDelim(r) {
			return false
		}
	}
	if !word {
		return true
	}
	if v[0] == '-' || v == "OR" || v == "AND" {
		return false
	}
	name, _, ok := strings.Cut(v, ":")
	return !ok || !isOperatorName(name)
}

// formatTime writes a day when the time is midnight UTC, else RFC 3339.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02")
	}
	return t.Format(time.RFC3339Nano)
}
