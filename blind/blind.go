// Package blind makes the catalog's blind-index tokens: keyed hashes of a
// field and a normalised term, so that the catalog can match a query against
// a message without holding any term, address or subject in clear.
//
// It owns the token key (derived from the vault's index secret under a label
// of its own, never the index or fingerprint key itself), term normalisation
// (Unicode NFKC and case folding, word splitting, bigrams for scripts
// written without spaces), the mapping from a query operator's value to the
// tokens it matches, and the streaming extractor that turns one message into
// its token set within fixed bounds.
//
// blind never stores anything and never sees a database, a network
// connection or a data key.
package blind

// Token is a blind-index token: the first 8 bytes, big endian, of
// HMAC-SHA256(token key, field || 0x00 || normalised term). 64 bits keep the
// catalog small; a false match needs two terms' tokens to collide, which the
// caller of a search tolerates (results are authorised and shown from the
// sealed summary, not from the token).
type Token uint64

// Field is what a token's term was found in. It is part of the hashed
// input, so the same word in a subject and in a body gives two tokens.
type Field string

// The fields. Address fields hold three kinds of term (see AddressTokens):
// the whole normalised address, its domain, and the words of its local part
// and display name.
const (
	FieldFrom     Field = "from"
	FieldTo       Field = "to" // every recipient: To and Cc headers, Bcc header, envelope recipients
	FieldCc       Field = "cc"
	FieldBcc      Field = "bcc"
	FieldReplyTo  Field = "reply-to"
	FieldSubject  Field = "subject"
	FieldBody     Field = "body"     // words of text/plain and text/html parts
	FieldFilename Field = "filename" // whole normalised attachment file names, and their words
	FieldExt      Field = "ext"      // attachment file name extensions, without the dot
	FieldMsgID    Field = "msgid"    // Message-ID without angle brackets
	FieldListID   Field = "listid"   // List-Id
	// FieldParty holds the normalised envelope sender and recipients
	// (archive.NormalizeAddress) and nothing else: the catalog's reader
	// isolation (a reader sees a message whose envelope names one of their
	// mailboxes) matches on it, the same rule as the archive listing.
	FieldParty Field = "party"
)
