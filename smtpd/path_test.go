package smtpd

import (
	"errors"
	"testing"
)

func TestSMTPPath(t *testing.T) {
	for _, tc := range []struct {
		in       string
		smtputf8 bool
		want     string // "" with bad: refused
		bad      bool
	}{
		{in: "", want: ""},
		{in: "alice@example.test", want: "alice@example.test"},
		{in: "first.last+tag@sub.example.test", want: "first.last+tag@sub.example.test"},
		{in: "postmaster", want: "postmaster"},
		{in: "user@[192.0.2.1]", want: "user@[192.0.2.1]"},
		{in: "user@[IPv6:2001:db8::1]", want: "user@[IPv6:2001:db8::1]"},
		// The outside review's injections: go-smtp unquoted these.
		{in: "bob+x> ORCPT=rfc822;x@example.test", want: `"bob+x> ORCPT=rfc822;x"@example.test`},
		{in: "bob> NOTIFY=NEVER@example.test", want: `"bob> NOTIFY=NEVER"@example.test`},
		{in: "carol smith@other.test", want: `"carol smith"@other.test`},
		{in: `a"b\c@x.test`, want: `"a\"b\\c"@x.test`},
		{in: "a@b@x.test", want: `"a@b"@x.test`},
		{in: ".lead@x.test", want: `".lead"@x.test`},
		{in: "two..dots@x.test", want: `"two..dots"@x.test`},
		{in: "üser@bücher.example", smtputf8: true, want: "üser@bücher.example"},
		{in: "ü ser@x.test", smtputf8: true, want: `"ü ser"@x.test`},
		{in: "üser@x.test", bad: true},
		{in: "user@bücher.example", bad: true},
		{in: "bad\r\nRCPT TO:<x@y>@x.test", bad: true},
		{in: "nul\x00@x.test", bad: true},
		{in: "tab\t@x.test", bad: true},
		{in: "user@exa mple.test", bad: true},
		{in: "user@example.test> NOTIFY=NEVER", bad: true},
		{in: "user@", bad: true},
		{in: "@x.test", bad: true},
		{in: "user@-x.test", bad: true},
		{in: "user@x..test", bad: true},
		{in: "user@[1.2.3.4] x]", bad: true},
		{in: "user@[]", bad: true},
		{in: "\xff@x.test", smtputf8: true, bad: true},
	} {
		got, err := smtpPath(tc.in, tc.smtputf8)
		if tc.bad {
			if !errors.Is(err, errUnwritablePath) {
				t.Errorf("smtpPath(%q, %v) = %q, %v; want refused", tc.in, tc.smtputf8, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("smtpPath(%q, %v) = %q, %v; want %q", tc.in, tc.smtputf8, got, err, tc.want)
		}
	}
}
