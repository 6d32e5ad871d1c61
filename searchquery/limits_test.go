package searchquery

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// words returns n (at most 676) distinct two-letter words joined by sep.
func words(n int, sep string) string {
	w := make([]string, n)
	for i := range w {
		w[i] = string([]byte{byte('a' + i/26), byte('a' + i%26)})
	}
	return strings.Join(w, sep)
}

// TestLimits holds queries at and just past every bound (and the bad
// input of issue 11) that are too large or too binary for the golden
// files: those within a bound parse, those past it fail where expected.
func TestLimits(t *testing.T) {
	long := strings.Repeat("a", MaxValueBytes-1)
	atLength := " " + strings.Repeat(long+" ", 7) + long // 8 words, MaxQueryBytes bytes
	if len(atLength) != MaxQueryBytes {
		t.Fatalf("atLength is %d bytes", len(atLength))
	}
	tests := []struct {
		name    string
		query   string
		wantPos int    // -1: the query parses
		wantMsg string // a part of the error message
	}{
		{"at the length bound", atLength, -1, ""},
		{"one byte past the length bound", atLength + "b", MaxQueryBytes, "longer than 2048 bytes"},
		{"100 KB", strings.Repeat("a OR ", 20000), MaxQueryBytes, "longer than 2048 bytes"},
		// The length is checked before the text is looked at.
		{"100 KB of NUL bytes", strings.Repeat("\x00", 100_000), MaxQueryBytes, "longer than"},
		{"1,000 OR terms", words(1000, " OR "), MaxQueryBytes, "longer than"},

		{"64 terms", words(MaxTerms, " "), -1, ""},
		{"65 terms", words(MaxTerms+1, " "), 3 * MaxTerms, "more than 64 terms"},
		{"65 OR terms", words(MaxTerms+1, " | "), 5 * MaxTerms, "more than 64 terms"},
		{"65 operator terms", strings.Repeat("from:a ", MaxTerms) + "has:attachment", 7 * MaxTerms, "more than 64 terms"},
		{"65 terms in a group", "subject:(" + words(MaxTerms+1, " ") + ")", 9 + 3*MaxTerms, "more than 64 terms"},

		{"16 nested groups", strings.Repeat("(", MaxDepth) + "a" + strings.Repeat(")", MaxDepth), -1, ""},
		{"17 nested groups", strings.Repeat("(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1), MaxDepth, "nested deeper than 16"},
		{"1,000 open parentheses", strings.Repeat("(", 1000), MaxDepth, "nested deeper than 16"},
		{"16 braces after an operator", "subject:" + strings.Repeat("{", MaxDepth) + "a" + strings.Repeat("}", MaxDepth), -1, ""},
		{"17 braces after an operator", "subject:" + strings.Repeat("{", MaxDepth+1) + "a" + strings.Repeat("}", MaxDepth+1), 8 + MaxDepth, "nested deeper than 16"},
		{"negations of groups nest", strings.Repeat("-(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1), 2*MaxDepth + 1, "nested deeper than 16"},

		{"a word at the value bound", strings.Repeat("w", MaxValueBytes), -1, ""},
		{"a word past the value bound", "a " + strings.Repeat("w", MaxValueBytes+1), 2, "longer than 256 bytes"},
		{"a phrase past the value bound", `a "` + strings.Repeat("w", MaxValueBytes+1) + `"`, 2, "longer than 256 bytes"},
		{"an operator value past the value bound", "from:" + strings.Repeat("w", MaxValueBytes+1), 5, "longer than 256 bytes"},
		{"a quoted operator value past the value bound", `subject:"` + strings.Repeat("w ", MaxValueBytes/2+1) + `"`, 8, "longer than 256 bytes"},
		{"multi-byte runes count as bytes", strings.Repeat("é", MaxValueBytes/2+1), 0, "longer than 256 bytes"},

		{"empty", "", 0, "empty query"},
		{"a NUL byte", "a\x00b", 1, "control character U+0000"},
		{"a NUL byte in a phrase", `"a` + "\x00" + `"`, 2, "control character U+0000"},
		{"an escape sequence", "\x1b[31mred", 0, "control character U+001B"},
		{"DEL", "a\x7f", 1, "control character U+007F"},
		{"a C1 control (NEL)", "a\u0085b", 1, "control character U+0085"},
		{"invalid UTF-8", "caf\xe9", 3, "not valid UTF-8"},
		{"a truncated rune", "a \xe4\xbc", 2, "not valid UTF-8"},
		{"tab, CR and LF separate words", "a\tb\r\nc", -1, ""},
		{"an encoded U+FFFD is a character", "\ufffd", -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Parse(tt.query, goldenNow)
			if tt.wantPos < 0 {
				if err != nil {
					t.Fatalf("error %v, want a tree", err)
				}
				checkRoundTrip(t, n, goldenNow)
				return
			}
			if err == nil {
				t.Fatalf("parsed to %s, want an error", sexpr(n))
			}
			checkError(t, tt.query, err)
			var e *Error
			errors.As(err, &e)
			if e.Pos != tt.wantPos || !strings.Contains(e.Msg, tt.wantMsg) {
				t.Fatalf("error at %d %q, want at %d containing %q", e.Pos, e.Msg, tt.wantPos, tt.wantMsg)
			}
			if len(e.Near) > nearBytes {
				t.Fatalf("excerpt %q longer than %d bytes", e.Near, nearBytes)
			}
		})
	}
}

// TestRelativeDatesUseNow checks newer_than: and older_than: against the
// time given, whatever its zone, and the clamping at the ends of the range.
func TestRelativeDatesUseNow(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	now := time.Date(2024, 3, 31, 1, 0, 0, 0, zone) // 2024-03-30T23:00Z
	tests := []struct {
		query string
		now   time.Time
		want  Node
	}{
		{"newer_than:1d", now, Date{After: time.Date(2024, 3, 29, 23, 0, 0, 0, time.UTC)}},
		{"older_than:3h", now, Date{Before: time.Date(2024, 3, 30, 20, 0, 0, 0, time.UTC)}},
		// A month back from March 30 is a day that February does not
		// have; time.AddDate's normalisation carries it into March.
		{"newer_than:1m", now, Date{After: time.Date(2024, 3, 1, 23, 0, 0, 0, time.UTC)}},
		{"older_than:2y", now, Date{Before: time.Date(2022, 3, 30, 23, 0, 0, 0, time.UTC)}},
		{"newer_than:1d", time.Time{}, Date{After: minTime}},
		{"older_than:0d", time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), Date{Before: maxTime}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.query, tt.now)
		if err != nil {
			t.Fatalf("Parse(%q, %v): %v", tt.query, tt.now, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q, %v) = %s, want %s", tt.query, tt.now, sexpr(got), sexpr(tt.want))
		}
		checkRoundTrip(t, got, tt.now)
	}
}

// TestFormatBuiltTrees renders trees Parse never builds (a caller may
// build them): nesting that needs parentheses to keep its meaning, and
// values that need quotes to stay words.
func TestFormatBuiltTrees(t *testing.T) {
	a, b := Term{Value: "a"}, Term{Value: "b"}
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		n    Node
		want string
	}{
		{And{Nodes: []Node{a, And{Nodes: []Node{b, a}}}}, "a (b a)"},
		{Or{Nodes: []Node{a, Or{Nodes: []Node{b, a}}}}, "a OR (b OR a)"},
		{Or{Nodes: []Node{And{Nodes: []Node{a, b}}, a}}, "(a b) OR a"},
		{Not{Node: Not{Node: a}}, "-(-a)"},
		{Not{Node: Or{Nodes: []Node{a, b}}}, "-(a OR b)"},
		{Term{Value: "OR"}, `"OR"`},
		{Term{Value: "-a"}, `"-a"`},
		{Term{Value: "from:x"}, `"from:x"`},
		{Term{Value: "a b"}, `"a b"`},
		{Term{Value: "a(b"}, `"a(b"`},
		{Term{Op: "from", Value: "OR"}, "from:OR"},
		{Term{Op: "subject", Value: "a|b"}, `subject:"a|b"`},
		{Date{After: day, Before: day.AddDate(0, 1, 0)}, "after:2024-01-02 before:2024-02-02"},
		{Not{Node: Date{After: day, Before: day.Add(time.Hour)}}, "-(after:2024-01-02 before:2024-01-02T01:00:00Z)"},
		{Or{Nodes: []Node{Size{Min: 1, Max: 9}, a}}, "(larger:1 smaller:9) OR a"},
	}
	for _, tt := range tests {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%s) = %q, want %q", sexpr(tt.n), got, tt.want)
		}
	}
}
