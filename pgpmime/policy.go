package pgpmime

import (
	"fmt"
	"strings"
)

// Policy says what happens to recipients when a message is forwarded.
type Policy string

const (
	// PolicyOff sends every recipient the original message.
	PolicyOff Policy = "off"
	// PolicyOpportunistic encrypts for recipients with a usable key and sends
	// the original to the others.
	PolicyOpportunistic Policy = "opportunistic"
	// PolicyRequired encrypts for recipients with a usable key and refuses
	// the others (550 5.7.1): nothing goes out in the clear.
	PolicyRequired Policy = "required"
)

// ParsePolicy parses a config value. The empty string is PolicyOff, the
// default; case and surrounding space are ignored.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return PolicyOff, nil
	case PolicyOff, PolicyOpportunistic, PolicyRequired:
		return p, nil
	}
	return "", fmt.Errorf("openpgp: policy %q: want off, opportunistic or required", s)
}

// Plan splits the envelope recipients of one message into the groups the
// forwarding stage sends separately:
//
//   - encrypted: the recipients to send one PGP/MIME message to, encrypted to
//     encRecipients (each key once, however many addresses share it);
//   - plain: the recipients to send the original message to;
//   - refused: the recipients to refuse (550 5.7.1).
//
// Under PolicyOff everyone is plain; under PolicyOpportunistic recipients
// without a usable key are plain; under PolicyRequired they are refused. A
// policy that is none of the three is treated as PolicyRequired, so that a
// wiring mistake can never send mail in the clear. A nil kr holds no keys.
// Every recipient is in exactly one group, in its original spelling and order.
//
// Plan knows nothing of the message: mail that Sniff reports as already
// encrypted is not planned at all but sent unchanged to every recipient.
func Plan(recipients []string, kr *Keyring, policy Policy) (encrypted []string, encRecipients []*Recipient, plain []string, refused []string) {
	if policy == PolicyOff {
		return nil, nil, append([]string(nil), recipients...), nil
	}
	seen := make(map[*Recipient]bool)
	for _, rcpt := range recipients {
		if r, ok := kr.Lookup(rcpt); ok {
			encrypted = append(encrypted, rcpt)
			if !seen[r] {
				seen[r] = true
				encRecipients = append(encRecipients, r)
			}
			continue
		}
		if policy == PolicyOpportunistic {
			plain = append(plain, rcpt)
		} else {
			refused = append(refused, rcpt)
		}
	}
	return encrypted, encRecipients, plain, refused
}
