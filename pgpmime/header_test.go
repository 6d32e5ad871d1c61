package pgpmime

import (
	"strings"
	"testing"
)

func TestParseOuterHeaders(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want OuterHeaders
	}{
		{"basic", "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Tue, 3 Jun 2025 10:00:00 +0000\r\nMessage-ID: <1@x>\r\nX-Other: y\r\n\r\nFrom: body@example.org\r\n",
			OuterHeaders{From: "a@example.org", To: "b@example.org", Subject: "hi", Date: "Tue, 3 Jun 2025 10:00:00 +0000", MessageID: "<1@x>"}},
		{"folded, LF, case", "to: b@example.org,\n  c@example.org\nCC:d@example.org\nmessage-id:\n <2@x>\n\n",
			OuterHeaders{To: "b@example.org,\r\n  c@example.org", Cc: "d@example.org", MessageID: "<2@x>"}},
		{"first wins", "From: first@example.org\r\nFrom: second@example.org\r\n\r\n",
			OuterHeaders{From: "first@example.org"}},
		{"header only", "Subject: s\r\nFrom: a@example.org\r\n",
			OuterHeaders{Subject: "s", From: "a@example.org"}},
		{"stray CR", "Subject: a\rb\r\n\r\n", OuterHeaders{Subject: "a b"}},
		{"8-bit", "Subject: caf\xe9\x00\r\n \xfa\r\n\r\n", OuterHeaders{Subject: "caf\xe9 \r\n \xfa"}},
		{"non-field line ends the header", "From: a@example.org\r\nnot a field\r\nTo: b@example.org\r\n\r\n",
			OuterHeaders{From: "a@example.org"}},
		{"leading continuation", " To: b@example.org\r\n\r\n", OuterHeaders{}},
		{"Bcc is never picked", "Bcc: secret@example.org\r\nTo: b@example.org\r\n\r\n", OuterHeaders{To: "b@example.org"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ParseOuterHeaders([]byte(c.in)); got != c.want {
				t.Errorf("got %#v\nwant %#v", got, c.want)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		in := strings.Repeat("X-F: "+strings.Repeat("x", 90)+"\r\n", MaxHeaderBytes/95+1) + "Subject: late\r\n\r\n"
		if got := ParseOuterHeaders([]byte(in)); got.Subject != "" {
			t.Errorf("a field beyond MaxHeaderBytes was read: %q", got.Subject)
		}
	})
}

func TestSanitizeValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"a\r\n b":                 "a\r\n b",
		"a\nb":                    "a\r\n b",
		"a\r\n\r\nb":              "a\r\n b",
		"a\rb\x00":                "a b ",
		"a\n\tb":                  "a\r\n\tb",
		"x@y\nBcc: z@example.org": "x@y\r\n Bcc: z@example.org",
		"caf\xe9\n \xfa":          "caf\xe9\r\n \xfa", // 8-bit bytes kept as they are
	} {
		if got := sanitizeValue(in); got != want {
			t.Errorf("sanitizeValue(%q) = %q, want %q", in, got, want)
		}
	}
}
