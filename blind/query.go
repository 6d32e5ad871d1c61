package blind

import (
	"slices"
	"strings"

	"github.com/mailvault/mailvaultd/archive"
)

// Match is what one query value matches: a message matches when it carries
// every token of at least one alternative (an OR of ANDs), which compiles to
// catalog.AnyOf{catalog.AllOf{HasToken...}...}. An empty Match means the
// value holds no term the index could hold (only punctuation, say); the
// search layer decides whether that is an error or matches nothing.
type Match [][]Token

// AddressTokens maps the value of an address operator (from:, to:, cc:,
// bcc:, reply-to:; field f) to what it matches:
//
//   - a value with an '@' is a whole address ("alice@example.com",
//     normalised like archive.NormalizeAddress); "@example.com" is a
//     domain;
//   - a value with a '.' and no space is a domain, which also matches its
//     subdomains ("example.com" matches a@mx.example.com), or a word of the
//     address ("john.doe" matches john.doe@example.com);
//   - anything else is words, all of which must be in the local part, the
//     domain or the display name of one of the field's addresses or of
//     different ones ("alice", "Alice Smith", "example").
func AddressTokens(k *Key, f Field, value string) Match {
	var n normaliser
	v := strings.TrimSpace(value)
	if len(v) >= 2 && v[0] == '<' && v[len(v)-1] == '>' {
		v = strings.TrimSpace(v[1 : len(v)-1])
	}
	switch {
	case strings.HasPrefix(v, "@"):
		if d := normalDomain(v[1:]); d != "" {
			return Match{{k.Token(f, d)}}
		}
		return nil
	case strings.Contains(v, "@"):
		return Match{{k.Token(f, archive.NormalizeAddress(v))}}
	}
	var m Match
	if strings.Contains(v, ".") && !strings.ContainsAny(v, " \t") {
		if d := normalDomain(v); d != "" {
			m = append(m, []Token{k.Token(f, d)})
		}
	}
	if all := fieldWords(k, &n, f, v); len(all) > 0 {
		m = append(m, all)
	}
	return dedupe(m)
}

// FilenameTokens maps the value of filename: to what it matches: the whole
// normalised file name ("report.pdf" matches an attachment called
// Report.PDF) or all of its words ("report" matches Q3-report.pdf; "pdf"
// matches any name with the word or extension pdf).
func FilenameTokens(k *Key, value string) Match {
	var n normaliser
	var m Match
	if whole := n.wholeName(value); whole != "" {
		m = append(m, []Token{k.Token(FieldFilename, whole)})
	}
	if all := fieldWords(k, &n, FieldFilename, value); len(all) > 0 {
		m = append(m, all)
	}
	return dedupe(m)
}

// ExtToken is the token of a file name extension ("pdf" or ".pdf").
func ExtToken(k *Key, ext string) Token {
	var n normaliser
	return k.Token(FieldExt, strings.TrimPrefix(strings.TrimSpace(n.normalise(ext)), "."))
}

// bareFields are where a bare word or phrase is looked for.
var bareFields = []Field{FieldSubject, FieldBody, FieldFilename}

// WordTokens maps a bare word to what it matches: the word in the subject,
// in a body part or in an attachment's file name. A value that is more than
// one word ("e-mail", "東京都", which are two) needs all its words in one
// of those fields.
func WordTokens(k *Key, value string) Match {
	var n normaliser
	var m Match
	for _, f := range bareFields {
		if all := fieldWords(k, &n, f, value); len(all) > 0 {
			m = append(m, all)
		}
	}
	return m
}

// PhraseTokens maps a quoted phrase to what it matches: all of its words in
// the subject, or all in the body, or all in a file name. The order and
// adjacency of the words are not checked (the catalog holds no positions);
// the same rule as WordTokens.
func PhraseTokens(k *Key, value string) Match { return WordTokens(k, value) }

// FieldWordTokens maps a value to all of its words in one field, for
// subject: (FieldSubject) and any operator that looks up words of one field.
func FieldWordTokens(k *Key, f Field, value string) Match {
	var n normaliser
	if all := fieldWords(k, &n, f, value); len(all) > 0 {
		return Match{all}
	}
	return nil
}

// MsgIDToken is the token of rfc822msgid:'s value (angle brackets
// optional).
func MsgIDToken(k *Key, value string) Token { return k.Token(FieldMsgID, msgIDTerm(value)) }

// ListIDToken is the token of a List-Id ("list.example.com", or a whole
// header value "Name <list.example.com>").
func ListIDToken(k *Key, value string) Token { return k.Token(FieldListID, listIDTerm(value)) }

// PartyToken is the token of a mailbox for reader isolation: normalisedAddr
// must already be archive.NormalizeAddress'd (users' mailboxes are stored
// that way), as the envelope addresses the extractor indexes are.
func PartyToken(k *Key, normalisedAddr string) Token { return k.Token(FieldParty, normalisedAddr) }

// fieldWords is the tokens of the words of value in f, deduplicated.
func fieldWords(k *Key, n *normaliser, f Field, value string) []Token {
	var ts []Token
	n.eachWord(value, func(w string) {
		if t := k.Token(f, w); !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	})
	return ts
}

// dedupe drops alternatives equal to an earlier one (a one-word domain and
// the same word are one token).
func dedupe(m Match) Match {
	var out Match
	for _, alt := range m {
		if !slices.ContainsFunc(out, func(o []Token) bool { return slices.Equal(o, alt) }) {
			out = append(out, alt)
		}
	}
	return out
}
