package searchquery

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txt")

// goldenNow is the parse time of every golden case, so newer_than: and
// older_than: resolve the same way on every run.
var goldenNow = time.Date(2025, 6, 15, 12, 30, 0, 0, time.UTC)

// A golden file holds cases: optional "#" comment lines and blank lines, one line of
// query (exactly as written, spaces included), a "----" line, the expected
// output, and a "====" line. The output is "tree:" (the tree, with term
// positions) and "canon:" (Format) for a query that parses, or "error:"
// (the Error text, position and excerpt included) for one that does not.
type goldenCase struct {
	comments []string
	query    string
	want     string
	line     int
}

const (
	caseSep = "----"
	caseEnd = "===="
)

func readGolden(t testing.TB, path string) []goldenCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var cases []goldenCase
	for i := 0; i < len(lines); {
		var c goldenCase
		for i < len(lines) && (lines[i] == "" || strings.HasPrefix(lines[i], "#")) {
			c.comments = append(c.comments, lines[i])
			i++
		}
		if i == len(lines) {
			break
		}
		c.line = i + 1
		c.query = lines[i]
		i++
		if i >= len(lines) || lines[i] != caseSep {
			t.Fatalf("%s:%d: want %q after the query", path, i+1, caseSep)
		}
		i++
		var out []string
		for i < len(lines) && lines[i] != caseEnd {
			out = append(out, lines[i])
			i++
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: case has no %q line", path, c.line, caseEnd)
		}
		i++
		c.want = strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases
}

func writeGolden(t *testing.T, path string, cases []goldenCase) {
	t.Helper()
	var b strings.Builder
	for _, c := range cases {
		for _, l := range c.comments {
			b.WriteString(l + "\n")
		}
		fmt.Fprintf(&b, "%s\n%s\n%s\n%s\n", c.query, caseSep, c.want, caseEnd)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goldenOutput is what a golden case records about a query, after
// checking what holds for every query: an error is an *Error within the
// query; a tree re-parses from its canonical form to itself.
func goldenOutput(t *testing.T, q string, now time.Time) string {
	t.Helper()
	n, err := Parse(q, now)
	if err != nil {
		checkError(t, q, err)
		return "error: " + err.Error()
	}
	checkRoundTrip(t, n, now)
	return "tree: " + sexpr(n) + "\ncanon: " + Format(n)
}

func checkError(t *testing.T, q string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q): error %T %v, want *Error", q, err, err)
	}
	if e.Pos < 0 || e.Pos > len(q) {
		t.Fatalf("Parse(%q): error position %d outside the query (%d bytes)", q, e.Pos, len(q))
	}
	if e.Msg == "" || !utf8.ValidString(e.Error()) {
		t.Fatalf("Parse(%q): error %q: empty message or not UTF-8", q, e.Error())
	}
	if e.Pos == len(q) != (e.Near == "") || !strings.HasPrefix(q[e.Pos:], e.Near) {
		t.Fatalf("Parse(%q): error excerpt %q is not the query at byte %d", q, e.Near, e.Pos)
	}
}

// checkRoundTrip re-parses n's canonical form (which may be longer than
// the query it came from, so past MaxQueryBytes) and wants the same tree
// and the same canonical form back.
func checkRoundTrip(t *testing.T, n Node, now time.Time) {
	t.Helper()
	canon := Format(n)
	again, err := parse(canon, now, 1<<20)
	if err != nil {
		t.Fatalf("canonical form %q does not parse: %v", canon, err)
	}
	if !reflect.DeepEqual(withoutPos(n), withoutPos(again)) {
		t.Fatalf("canonical form %q parses to\n%s\nnot\n%s", canon, sexpr(again), sexpr(n))
	}
	if c2 := Format(again); c2 != canon {
		t.Fatalf("canonical form %q renders again as %q", canon, c2)
	}
}

func withoutPos(n Node) Node {
	switch n := n.(type) {
	case And:
		out := make([]Node, len(n.Nodes))
		for i, c := range n.Nodes {
			out[i] = withoutPos(c)
		}
		return And{Nodes: out}
	case Or:
		out := make([]Node, len(n.Nodes))
		for i, c := range n.Nodes {
			out[i] = withoutPos(c)
		}
		return Or{Nodes: out}
	case Not:
		return Not{Node: withoutPos(n.Node)}
	case Term:
		n.Pos = 0
		return n
	}
	return n
}

// sexpr writes a tree as an S-expression that shows its structure and
// every field, term positions included.
func sexpr(n Node) string {
	list := func(head string, nodes []Node) string {
		parts := []string{head}
		for _, c := range nodes {
			parts = append(parts, sexpr(c))
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	switch n := n.(type) {
	case And:
		return list("and", n.Nodes)
	case Or:
		return list("or", n.Nodes)
	case Not:
		return "(not " + sexpr(n.Node) + ")"
	case Term:
		s := "(term"
		if n.Op != "" {
			s += " " + n.Op
		}
		if n.Phrase {
			s += " phrase"
		}
		return fmt.Sprintf("%s %q @%d)", s, n.Value, n.Pos)
	case Has:
		return "(has " + n.What + ")"
	case Date:
		s := "(date"
		if !n.After.IsZero() {
			s += " after " + n.After.Format(time.RFC3339Nano)
		}
		if !n.Before.IsZero() {
			s += " before " + n.Before.Format(time.RFC3339Nano)
		}
		return s + ")"
	case Size:
		s := "(size"
		if n.Min != 0 || n.Max == 0 {
			s += fmt.Sprintf(" min %d", n.Min)
		}
		if n.Max != 0 {
			s += fmt.Sprintf(" max %d", n.Max)
		}
		return s + ")"
	}
	return fmt.Sprintf("(unknown %T)", n)
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cases := readGolden(t, path)
			for i, c := range cases {
				got := goldenOutput(t, c.query, goldenNow)
				if *update {
					cases[i].want = got
					continue
				}
				if got != c.want {
					t.Errorf("%s:%d: %q\ngot:\n%s\nwant:\n%s", path, c.line, c.query, got, c.want)
				}
			}
			if *update {
				writeGolden(t, path, cases)
			}
		})
	}
}
