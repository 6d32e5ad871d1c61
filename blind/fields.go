package blind

import "fmt"

// Fields are the groups of terms the extractor indexes: the config key
// catalog.index. Message-ID and the envelope's party tokens are indexed
// whatever Fields says: rfc822msgid: and reader isolation depend on them.
type Fields struct {
	Addresses   bool // From, To, Cc, Bcc, Reply-To headers, the envelope, List-Id
	Subject     bool // words of the Subject header
	Attachments bool // attachment file names, their words and extensions
	Body        bool // words of text/plain and text/html parts
}

// AllFields is the default: everything on.
func AllFields() Fields { return Fields{Addresses: true, Subject: true, Attachments: true, Body: true} }

// ParseFields reads the config list (catalog.index), e.g. [addresses,
// subject]. An unknown or repeated name is an error that names it.
func ParseFields(names []string) (Fields, error) {
	var f Fields
	for _, name := range names {
		var on *bool
		switch name {
		case "addresses":
			on = &f.Addresses
		case "subject":
			on = &f.Subject
		case "attachments":
			on = &f.Attachments
		case "body":
			on = &f.Body
		default:
			return Fields{}, fmt.Errorf("blind: index field %q: want addresses, subject, attachments or body", name)
		}
		if *on {
			return Fields{}, fmt.Errorf("blind: index field %q: listed twice", name)
		}
		*on = true
	}
	return f, nil
}
