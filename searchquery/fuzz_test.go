package searchquery

import (
	"path/filepath"
	"testing"
)

// FuzzParse holds Parse to what every query gets: no panic; an error is an
// *Error inside the query with a UTF-8 message and an excerpt of it; a
// tree has at most MaxTerms leaves and re-parses from its canonical form
// to itself. Seeds: every golden query, plus the corpus
// under testdata/fuzz/FuzzParse (inputs the fuzzer found interesting).
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range files {
		for _, c := range readGolden(f, path) {
			f.Add(c.query)
		}
	}
	f.Fuzz(func(t *testing.T, q string) {
		n, err := Parse(q, goldenNow)
		if err != nil {
			if n != nil {
				t.Fatalf("Parse(%q) returned a tree and an error", q)
			}
			checkError(t, q, err)
			return
		}
		if n == nil {
			t.Fatalf("Parse(%q) returned neither a tree nor an error", q)
		}
		if leaves := countLeaves(n); leaves > MaxTerms {
			t.Fatalf("Parse(%q): %d leaves", q, leaves)
		}
		checkRoundTrip(t, n, goldenNow)
	})
}

func countLeaves(n Node) int {
	switch n := n.(type) {
	case And:
		total := 0
		for _, c := range n.Nodes {
			total += countLeaves(c)
		}
		return total
	case Or:
		total := 0
		for _, c := range n.Nodes {
			total += countLeaves(c)
		}
		return total
	case Not:
		return countLeaves(n.Node)
	}
	return 1
}
