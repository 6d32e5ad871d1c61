package blind

import "testing"

// tokenSet is what a message carries.
type tokenSet map[Token]bool

// matches reports whether a message with tokens ts matches m.
func (ts tokenSet) matches(m Match) bool {
	for _, alt := range m {
		all := len(alt) > 0
		for _, t := range alt {
			all = all && ts[t]
		}
		if all {
			return true
		}
	}
	return false
}

func termSet(k *Key, emit func(n *normaliser, fn termFunc)) tokenSet {
	ts := tokenSet{}
	var n normaliser
	emit(&n, func(f Field, term string) { ts[k.Token(f, term)] = true })
	return ts
}

func TestAddressTokens(t *testing.T) {
	k := NewKey(testSecret())
	ts := termSet(k, func(n *normaliser, fn termFunc) {
		n.addressTerms(FieldFrom, "John.Doe@Mail.Bücher.Example", "Doe, Jöhn", fn)
	})
	tests := []struct {
		value string
		want  bool
	}{
		{"john.doe@mail.bücher.example", true},
		{"JOHN.DOE@MAIL.XN--BCHER-KVA.EXAMPLE", true},
		{"<john.doe@mail.bücher.example>", true},
		{"jane.doe@mail.bücher.example", false},
		{"@mail.bücher.example", true},
		{"@bücher.example", true},
		{"xn--bcher-kva.example", true},
		{"bücher.example", true},
		{"other.example", false},
		{"john", true},
		{"JOHN", true},
		{"john.doe", true},
		{"doe", true},
		{"jöhn", true},
		{"jöhn doe", true},
		{"\"Doe, Jöhn\"", true},
		{"john smith", false},
		{"jane", false},
		{"mail", true},
		{"bücher", true},
		{"!!!", false},
	}
	for _, tc := range tests {
		if got := ts.matches(AddressTokens(k, FieldFrom, tc.value)); got != tc.want {
			t.Errorf("from:%s matches = %v, want %v (match %v)", tc.value, got, tc.want, AddressTokens(k, FieldFrom, tc.value))
		}
		// The same value never matches in another field.
		if ts.matches(AddressTokens(k, FieldTo, tc.value)) {
			t.Errorf("to:%s matches a From address", tc.value)
		}
	}
}

func TestFilenameTokens(t *testing.T) {
	k := NewKey(testSecret())
	ts := termSet(k, func(n *normaliser, fn termFunc) { n.filenameTerms("Q3-Report_final.PDF", fn) })
	tests := []struct {
		value string
		want  bool
	}{
		{"q3-report_final.pdf", true},
		{"Q3-REPORT_FINAL.PDF", true},
		{"report", true},
		{"pdf", true},
		{"final", true},
		{"report_final.pdf", true},
		{"q3 report", true},
		{"invoice", false},
		{"report.docx", false},
	}
	for _, tc := range tests {
		if got := ts.matches(FilenameTokens(k, tc.value)); got != tc.want {
			t.Errorf("filename:%s matches = %v, want %v", tc.value, got, tc.want)
		}
	}
	if !ts[ExtToken(k, ".pdf")] || !ts[ExtToken(k, "PDF")] {
		t.Error("extension pdf not indexed")
	}
}

func TestWordTokens(t *testing.T) {
	k := NewKey(testSecret())
	ts := termSet(k, func(n *normaliser, fn termFunc) {
		n.wordsAndPieces(FieldSubject, "Quarterly invoice", fn)
		n.wordsAndPieces(FieldBody, "東京都の天気 write to john.doe@example.com", fn)
	})
	tests := []struct {
		value string
		want  bool
	}{
		{"invoice", true},
		{"INVOICE", true},
		{"東京", true},
		{"東京都", true},
		{"京都", true},
		{"大阪", false},
		{"john", true},
		{"example.com", true},
		{"john.doe@example.com", true},
		{"quarterly invoice", true},
		{"invoice write", false}, // subject word and body word: a phrase is one field
		{"missing", false},
	}
	for _, tc := range tests {
		if got := ts.matches(WordTokens(k, tc.value)); got != tc.want {
			t.Errorf("word %q matches = %v, want %v", tc.value, got, tc.want)
		}
	}
	if !ts.matches(FieldWordTokens(k, FieldSubject, "invoice")) || ts.matches(FieldWordTokens(k, FieldSubject, "write")) {
		t.Error("subject: looks beyond the subject")
	}
	if len(WordTokens(k, "--- !!!")) != 0 {
		t.Error("punctuation gave tokens")
	}
}

func TestIDTokens(t *testing.T) {
	k := NewKey(testSecret())
	if MsgIDToken(k, "<ABC.123@Mail.Example.COM>") != MsgIDToken(k, "abc.123@mail.example.com") {
		t.Error("Message-ID: brackets or domain case change the token")
	}
	if ListIDToken(k, "Users List <Users.Example.ORG>") != ListIDToken(k, "users.example.org") {
		t.Error("List-Id: name or case change the token")
	}
	if PartyToken(k, "a@example.com") != k.Token(FieldParty, "a@example.com") {
		t.Error("PartyToken is not the party field's token")
	}
}
