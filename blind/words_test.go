package blind

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWords(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"ascii", "Hello, World!", []string{"hello", "world"}},
		{"dotted capital I", "İstanbul ISTANBUL istanbul", []string{"istanbul", "istanbul", "istanbul"}},
		{"dotless i kept", "ılık", []string{"ılık"}},
		{"sharp s", "Straße STRASSE ẞ", []string{"strasse", "strasse", "ss"}},
		{"accents kept", "café cafe", []string{"café", "cafe"}},
		{"decomposed accent", "cafe\u0301", []string{"café"}},
		{"compatibility forms", "ＡＢＣ ﬁle", []string{"abc", "file"}},
		{"greek final sigma", "ΟΔΟΣ οδος", []string{"οδοσ", "οδοσ"}},
		{"emoji", "I ❤️ 🎉 👍🏽", []string{"i", "❤", "🎉", "👍🏽"}},
		{"variation selector", "❤ ❤️", []string{"❤", "❤"}},
		{"han bigrams", "東京都", []string{"東京", "京都"}},
		{"single han", "東", []string{"東"}},
		{"han broken by space", "東京 大阪", []string{"東京", "大阪"}},
		{"japanese mixed", "東京タワー", []string{"東京", "京タ", "タワ", "ワー"}},
		{"hiragana", "ありがとう", []string{"あり", "りが", "がと", "とう"}},
		{"thai", "ภาษาไทย", []string{"ภา", "าษ", "ษา", "าไ", "ไท", "ทย"}},
		{"hangul words", "서울에서 만나요", []string{"서울에서", "만나요"}},
		{"mixed scripts", "mixed東京Tower", []string{"mixed", "東京", "tower"}},
		{"numbers", "3.14 1,000 2024-01-05", []string{"3.14", "1,000", "2024", "01", "05"}},
		{"email-like", "Write to John.Doe@Example.COM now", []string{"write", "to", "john.doe", "example.com", "now"}},
		{"apostrophe and hyphen", "don't e-mail snake_case", []string{"don't", "e", "mail", "snake_case"}},
		{"punctuation only", "— ... !!! ()", nil},
		{"invalid utf-8", "ab\xffcd", []string{"ab", "cd"}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Words(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("Words(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestWordsCapLength(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	w := Words(long)
	if len(w) != 1 || len(w[0]) > MaxWordBytes || !utf8.ValidString(w[0]) {
		t.Fatalf("Words(long) = %q", w)
	}
	// A longer query word still matches on the kept prefix.
	if got := Words(long + "é"); !slices.Equal(got, w) {
		t.Errorf("longer word gives %q, want %q", got, w)
	}
}

// TestWordsIdempotent: a word is its own only word, so a term from a
// message and the same term typed into a query always agree.
func TestWordsIdempotent(t *testing.T) {
	for _, s := range []string{"İstanbul Straße ẞ café ❤️ 東京都 ภาษาไทย john.doe@example.com ΣΊΣΥΦΟΣ ǅ ﬃ"} {
		for _, w := range Words(s) {
			if got := Words(w); len(got) != 1 || got[0] != w {
				// Bigrams are two characters and give themselves back.
				t.Errorf("Words(%q) = %q", w, got)
			}
		}
	}
}

func FuzzWords(f *testing.F) {
	for _, s := range []string{"İstanbul", "東京都", "a.b@c", "\xff\xfe", "ก\u0e31"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, w := range Words(s) {
			if w == "" || len(w) > MaxWordBytes || !utf8.ValidString(w) {
				t.Fatalf("Words(%q) gave %q", s, w)
			}
		}
	})
}

func TestPieces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"john.doe", []string{"john", "doe"}},
		{"q3_report", []string{"q3", "report"}},
		{"plain", nil},
		{"3.14", []string{"3", "14"}},
	}
	for _, tc := range tests {
		var got []string
		pieces(tc.in, func(p string) { got = append(got, p) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("pieces(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
