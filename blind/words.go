package blind

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// MaxWordBytes caps one term: a longer word is cut, at a rune boundary, to
// its first MaxWordBytes bytes, on both the message and the query side, so a
// long query word still matches on what was kept.
const MaxWordBytes = 64

// Words splits text into normalised search terms, in order, duplicates
// kept. It is the one definition of a word that the extractor and the
// query side share:
//
//   - Unicode NFKC, then full case folding (ß, ẞ and SS all become "ss"),
//     then NFKC again; İ folds to "i" (not "i" with a dot above) so that
//     "İstanbul" matches "istanbul", while the Turkish dotless ı stays a
//     letter of its own. Variation selectors are dropped (❤️ = ❤).
//   - Accents are kept: "café" and "cafe" are different words (the
//     decomposed and precomposed forms of é are the same, by NFKC).
//   - Word boundaries are those of Unicode UAX #29, so "john.doe",
//     "3.14", "don't" and "snake_case" stay one word, and "e-mail" is two.
//   - Segments without a letter, a digit or a symbol such as an emoji
//     (punctuation, spaces) are dropped.
//   - Scripts written without spaces (Han, Hiragana, Katakana, Thai, Lao,
//     Khmer, Myanmar) become overlapping bigrams of characters (a base
//     rune and its combining marks): "東京都" gives "東京" and "京都"; a
//     single character alone is a unigram. Hangul is written with spaces
//     and is kept as whole words.
//   - Each word is cut to MaxWordBytes.
func Words(text string) []string {
	var n normaliser
	var out []string
	n.eachWord(text, func(w string) { out = append(out, w) })
	return out
}

// normaliser holds the case folder, which is not safe for concurrent use:
// one per goroutine.
type normaliser struct {
	fold cases.Caser
	init bool
}

// normalise applies NFKC and case folding to s (see Words).
func (n *normaliser) normalise(s string) string {
	if !n.init {
		n.fold = cases.Fold()
		n.init = true
	}
	s = strings.ToValidUTF8(s, " ")
	s = norm.NFKC.String(s)
	s = n.fold.String(s)
	if strings.ContainsRune(s, '\u0307') {
		s = strings.ReplaceAll(s, "i\u0307", "i")
	}
	if strings.ContainsAny(s, "\ufe0e\ufe0f") {
		s = strings.Map(func(r rune) rune {
			if r == '\ufe0e' || r == '\ufe0f' {
				return -1
			}
			return r
		}, s)
	}
	return norm.NFKC.String(s)
}

// eachWord calls fn with every word of text (see Words).
func (n *normaliser) eachWord(text string, fn func(string)) {
	s := n.normalise(text)
	var run strings.Builder // consecutive segments of a script without spaces
	flush := func() {
		if run.Len() > 0 {
			bigrams(run.String(), fn)
			run.Reset()
		}
	}
	state := -1
	for len(s) > 0 {
		var seg string
		seg, s, state = uniseg.FirstWordInString(s, state)
		switch kind(seg) {
		case segUnspaced:
			run.WriteString(seg)
		case segWord:
			flush()
			fn(capWord(seg))
		default:
			flush()
		}
	}
	flush()
}

type segKind uint8

const (
	segSkip     segKind = iota // punctuation, space, control
	segWord                    // letters, digits, symbols
	segUnspaced                // a script written without spaces
)

func kind(seg string) segKind {
	r, _ := utf8.DecodeRuneInString(seg)
	if unspaced(r) {
		return segUnspaced
	}
	for _, r := range seg {
		if unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.So, r) {
			return segWord
		}
	}
	return segSkip
}

// unspacedScripts are the scripts written without spaces between words.
var unspacedScripts = []*unicode.RangeTable{
	unicode.Han, unicode.Hiragana, unicode.Katakana,
	unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar,
}

func unspaced(r rune) bool {
	// The prolonged sound mark and the iteration marks are of the Common
	// script but only ever written inside Japanese words.
	switch r {
	case 'ー', '〃', '々', '〆', 'ゝ', 'ゞ', 'ヽ', 'ヾ':
		return true
	}
	return unicode.In(r, unspacedScripts...)
}

// bigrams calls fn with the overlapping pairs of characters of run, or
// with run itself when it is one character.
func bigrams(run string, fn func(string)) {
	// starts[i] is where character i begins; a character is a base rune
	// and the combining marks after it.
	var starts []int
	for i, r := range run {
		if len(starts) == 0 || !unicode.Is(unicode.M, r) {
			starts = append(starts, i)
		}
	}
	starts = append(starts, len(run))
	if len(starts) == 2 {
		fn(capWord(run))
		return
	}
	for i := 0; i+2 < len(starts); i++ {
		fn(capWord(run[starts[i]:starts[i+2]]))
	}
}

// capWord cuts w to at most MaxWordBytes, at a rune boundary.
func capWord(w string) string { return capBytes(w, MaxWordBytes) }

// pieces calls fn with the parts of a word that UAX #29 keeps whole but
// that a search may want alone: "john.doe" gives "john" and "doe",
// "q3_report" gives "q3" and "report". A word without such joiners gives
// nothing. The extractor indexes a word and its pieces; a query looks up
// its words as they are.
func pieces(w string, fn func(string)) {
	isPiece := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.M, r) }
	if strings.IndexFunc(w, func(r rune) bool { return !isPiece(r) }) < 0 {
		return
	}
	for _, p := range strings.FieldsFunc(w, func(r rune) bool { return !isPiece(r) }) {
		fn(p)
	}
}
