package blind

import (
	"strings"
	"unicode"

	"github.com/mailvault/mailvaultd/archive"
)

// The terms of each kind of value, as the extractor emits them. Query-side
// functions (query.go) look up a subset of the same terms, so the two stay
// in one place.

const (
	// maxNameBytes caps a whole normalised file name.
	maxNameBytes = 255
	// maxExtBytes: a longer "extension" is part of the name, not a type.
	maxExtBytes = 16
	// maxDomainSuffixes caps the parent domains indexed for one address
	// (a.b.example.com gives itself, b.example.com and example.com).
	maxDomainSuffixes = 8
)

// termFunc receives one term of a field.
type termFunc func(f Field, term string)

// wordsAndPieces calls fn with each word of text and each piece of it (see
// pieces): what the extractor indexes for free text.
func (n *normaliser) wordsAndPieces(f Field, text string, fn termFunc) {
	n.eachWord(text, func(w string) {
		fn(f, w)
		pieces(w, func(p string) { fn(f, p) })
	})
}

// addressTerms calls fn with the terms of one address in field f: the whole
// normalised address (archive.NormalizeAddress), its domain and parent
// domains down to two labels, and the words (and pieces) of its local
// part, its domain (as written) and its display name.
func (n *normaliser) addressTerms(f Field, addr, name string, fn termFunc) {
	a := archive.NormalizeAddress(addr)
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		local, domain := a[:at], a[at+1:]
		if local != "" && domain != "" {
			fn(f, a)
		}
		domainSuffixes(domain, func(d string) { fn(f, d) })
		n.wordsAndPieces(f, local, fn)
		// The domain's words as written, not as A-labels: "bücher", not
		// "xn--bcher-kva".
		n.wordsAndPieces(f, addr[strings.LastIndexByte(addr, '@')+1:], fn)
	} else {
		n.wordsAndPieces(f, a, fn)
	}
	n.wordsAndPieces(f, name, fn)
}

// domainSuffixes calls fn with d and its parent domains that still have two
// labels: "a.b.example.com", "b.example.com", "example.com".
func domainSuffixes(d string, fn func(string)) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.HasPrefix(d, "[") {
		if d != "" {
			fn(d) // an address literal: itself only
		}
		return
	}
	for i := 0; i < maxDomainSuffixes; i++ {
		fn(d)
		dot := strings.IndexByte(d, '.')
		if dot < 0 || strings.IndexByte(d[dot+1:], '.') < 0 {
			return
		}
		d = d[dot+1:]
	}
}

// normalDomain is a domain as addressTerms indexes it.
func normalDomain(d string) string {
	a := archive.NormalizeAddress("x@" + strings.TrimSpace(d))
	return strings.TrimSuffix(a[strings.LastIndexByte(a, '@')+1:], ".")
}

// filenameTerms calls fn with the terms of one attachment file name: the
// whole normalised name and its words (and pieces) in FieldFilename, its
// extension in FieldExt.
func (n *normaliser) filenameTerms(name string, fn termFunc) {
	whole := n.wholeName(name)
	if whole == "" {
		return
	}
	fn(FieldFilename, whole)
	n.wordsAndPieces(FieldFilename, name, fn)
	if ext := extension(whole); ext != "" {
		fn(FieldExt, ext)
	}
}

// wholeName is a file name normalised as one term: NFKC, case folded,
// trimmed, cut to maxNameBytes.
func (n *normaliser) wholeName(name string) string {
	s := strings.TrimSpace(n.normalise(name))
	if len(s) > maxNameBytes {
		s = capBytes(s, maxNameBytes)
	}
	return s
}

// extension is what follows the last dot of a normalised name, when that
// looks like a type: letters and digits, at most maxExtBytes.
func extension(name string) string {
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 || dot == len(name)-1 || len(name)-dot-1 > maxExtBytes {
		return ""
	}
	ext := name[dot+1:]
	if strings.IndexFunc(ext, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) >= 0 {
		return ""
	}
	return ext
}

// msgIDTerm is a Message-ID as indexed: without angle brackets and
// surrounding space, its left side lower-cased in ASCII and its right side
// as a domain (archive.NormalizeAddress), so a pasted id matches whatever
// case the client wrote.
func msgIDTerm(v string) string { return archive.NormalizeAddress(v) }

// listIDTerm is a List-Id as indexed: the id inside the angle brackets
// (RFC 2919: `Name <list.example.com>`), or the whole value when there are
// none, lower-cased.
func listIDTerm(v string) string {
	if open := strings.LastIndexByte(v, '<'); open >= 0 {
		if end := strings.IndexByte(v[open:], '>'); end > 0 {
			v = v[open+1 : open+end]
		}
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// capBytes cuts s to at most n bytes at a rune boundary.
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
