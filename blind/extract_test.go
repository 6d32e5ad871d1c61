package blind

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

// crlf turns a readable message literal into one with CRLF line ends.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// extract runs one message through an extractor in one write.
func extract(t testing.TB, k *Key, l Limits, f Fields, msg string, envFrom string, envTo ...string) Result {
	t.Helper()
	x := NewExtractor(k, l, f)
	x.Envelope(envFrom, envTo)
	if n, err := x.Write([]byte(msg)); n != len(msg) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	res, err := x.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return res
}

func (r Result) set() tokenSet {
	ts := tokenSet{}
	for _, t := range r.Tokens {
		ts[t] = true
	}
	return ts
}

const fullMessage = `From: "Doe, Jöhn" <John.Doe@Example.com>
To: Alice <alice@example.org>, bob@example.net
Cc: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.fr>
Bcc: secret@example.com
Reply-To: replies@lists.example.com
Subject: =?UTF-8?B?UXVhcnRlcmx5IHJlcG9ydCDmnbHkuqzpg70=?=
Date: Mon, 2 Mar 2026 10:00:00 +0000
Message-ID: <Abc.123@Mail.Example.COM>
List-Id: Project Users <users.project.example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble words are not indexed
--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Plainword and İstanbul, Straße; write to carol.smith@example.com
--alt
Content-Type: text/html; charset=utf-8

<html><head><style>.stylerule{color:red}</style><script>var scriptword=1;</script></head>
<body><p>Html&amp;entity caf&eacute;</p><b>in</b>line<div>block</div>split</body></html>
--alt--
--outer
Content-Type: application/pdf; name="Q3-Report_final.PDF"
Content-Disposition: attachment; filename="Q3-Report_final.PDF"
Content-Transfer-Encoding: base64

` + "JVBERi0xLjQKYXR0YWNobWVudHdvcmQK" + `
--outer
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment

attachmentbodyword
--outer--
epilogue words are not indexed
`

func TestExtractFields(t *testing.T) {
	k := NewKey(testSecret())
	res := extract(t, k, Limits{}, AllFields(), crlf(fullMessage), "bounce@example.com", "alice@example.org", "hidden@example.net")
	ts := res.set()
	tests := []struct {
		name string
		m    Match
		want bool
	}{
		{"from address", AddressTokens(k, FieldFrom, "john.doe@example.com"), true},
		{"from name", AddressTokens(k, FieldFrom, "jöhn"), true},
		{"from domain", AddressTokens(k, FieldFrom, "example.com"), true},
		{"from envelope sender", AddressTokens(k, FieldFrom, "bounce@example.com"), true},
		{"to header", AddressTokens(k, FieldTo, "bob@example.net"), true},
		{"to name", AddressTokens(k, FieldTo, "alice"), true},
		{"to includes cc", AddressTokens(k, FieldTo, "renee@example.fr"), true},
		{"to includes bcc header", AddressTokens(k, FieldTo, "secret@example.com"), true},
		{"to includes envelope", AddressTokens(k, FieldTo, "hidden@example.net"), true},
		{"cc", AddressTokens(k, FieldCc, "renée"), true},
		{"cc is not to", AddressTokens(k, FieldCc, "bob@example.net"), false},
		{"bcc header", AddressTokens(k, FieldBcc, "secret@example.com"), true},
		{"bcc from envelope", AddressTokens(k, FieldBcc, "hidden@example.net"), true},
		{"bcc not a header recipient", AddressTokens(k, FieldBcc, "alice@example.org"), false},
		{"reply-to", AddressTokens(k, FieldReplyTo, "replies@lists.example.com"), true},
		{"reply-to parent domain", AddressTokens(k, FieldReplyTo, "example.com"), true},
		{"subject word", FieldWordTokens(k, FieldSubject, "quarterly"), true},
		{"subject bigram", FieldWordTokens(k, FieldSubject, "東京都"), true},
		{"subject not body", FieldWordTokens(k, FieldSubject, "plainword"), false},
		{"plain body", WordTokens(k, "plainword"), true},
		{"plain body folded", WordTokens(k, "ISTANBUL strasse"), true},
		{"email in body", WordTokens(k, "carol.smith@example.com"), true},
		{"email piece in body", WordTokens(k, "carol"), true},
		{"html entity", WordTokens(k, "html"), true},
		{"html entity decoded", WordTokens(k, "café"), true},
		{"html inline tags join", WordTokens(k, "inline"), true},
		{"html block tags split", WordTokens(k, "blocksplit"), false},
		{"html style dropped", WordTokens(k, "stylerule"), false},
		{"html script dropped", WordTokens(k, "scriptword"), false},
		{"preamble", WordTokens(k, "preamble"), false},
		{"epilogue", WordTokens(k, "epilogue"), false},
		{"attachment contents", WordTokens(k, "attachmentbodyword"), false},
		{"filename whole", FilenameTokens(k, "q3-report_final.pdf"), true},
		{"filename word", FilenameTokens(k, "report"), true},
		{"filename bare word", WordTokens(k, "report"), true},
		{"text attachment name", FilenameTokens(k, "notes.txt"), true},
		{"ext", Match{{ExtToken(k, "pdf")}}, true},
		{"message-id", Match{{MsgIDToken(k, "abc.123@mail.example.com")}}, true},
		{"list-id", Match{{ListIDToken(k, "users.project.example.org")}}, true},
		{"party sender", Match{{PartyToken(k, "bounce@example.com")}}, true},
		{"party recipient", Match{{PartyToken(k, "hidden@example.net")}}, true},
		{"party is envelope only", Match{{PartyToken(k, "bob@example.net")}}, false},
	}
	for _, tc := range tests {
		if got := ts.matches(tc.m); got != tc.want {
			t.Errorf("%s: matches = %v, want %v", tc.name, got, tc.want)
		}
	}
	s := res.Summary
	want := Summary{
		From: `"Doe, Jöhn" <John.Doe@Example.com>`, To: "Alice <alice@example.org>, bob@example.net",
		Cc: "Renée <renee@example.fr>", Subject: "Quarterly report 東京都", Date: "Mon, 2 Mar 2026 10:00:00 +0000",
		MessageID: "<Abc.123@Mail.Example.COM>", ListID: "Project Users <users.project.example.org>",
		Attachments: []Attachment{
			{Name: "Q3-Report_final.PDF", Type: "application/pdf", Size: 24},
			{Name: "notes.txt", Type: "text/plain", Size: int64(len("attachmentbodyword"))},
		},
		HasAttachment: true,
	}
	if fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", want) {
		t.Errorf("summary\n got %+v\nwant %+v", s, want)
	}
	if res.Capped || !slices.IsSorted(res.Tokens) || slices.Compact(slices.Clone(res.Tokens)) == nil {
		t.Errorf("capped %v, sorted %v", res.Capped, slices.IsSorted(res.Tokens))
	}
}

// TestExtractFieldGroups: each group of catalog.index switched off leaves
// no token of its own, and party tokens and the Message-ID stay.
func TestExtractFieldGroups(t *testing.T) {
	k := NewKey(testSecret())
	probes := map[string]Match{
		"addresses":   AddressTokens(k, FieldFrom, "john.doe@example.com"),
		"subject":     FieldWordTokens(k, FieldSubject, "quarterly"),
		"attachments": FilenameTokens(k, "report"),
		"body":        WordTokens(k, "plainword"),
	}
	always := Match{{PartyToken(k, "bounce@example.com"), MsgIDToken(k, "abc.123@mail.example.com")}}
	for _, off := range []string{"addresses", "subject", "attachments", "body"} {
		var on []string
		for _, g := range []string{"addresses", "subject", "attachments", "body"} {
			if g != off {
				on = append(on, g)
			}
		}
		f, err := ParseFields(on)
		if err != nil {
			t.Fatal(err)
		}
		ts := extract(t, k, Limits{}, f, crlf(fullMessage), "bounce@example.com", "alice@example.org").set()
		for g, m := range probes {
			if got := ts.matches(m); got != (g != off) {
				t.Errorf("%s off: %s probe matches = %v", off, g, got)
			}
		}
		if !ts.matches(always) {
			t.Errorf("%s off: party or Message-ID token missing", off)
		}
	}
}

func TestParseFields(t *testing.T) {
	if f, err := ParseFields([]string{"addresses", "subject", "attachments", "body"}); err != nil || f != AllFields() {
		t.Errorf("all: %+v, %v", f, err)
	}
	for _, bad := range [][]string{{"bodies"}, {"body", "body"}} {
		if _, err := ParseFields(bad); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("ParseFields(%q) = %v", bad, err)
		}
	}
}

func encodeCharset(t *testing.T, e encoding.Encoding, s string) []byte {
	t.Helper()
	b, err := e.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExtractCharsets(t *testing.T) {
	k := NewKey(testSecret())
	qp := func(b []byte) string {
		var buf bytes.Buffer
		w := quotedprintable.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.String()
	}
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	raw := func(b []byte) string { return string(b) }
	tests := []struct {
		name, charset, cte string
		enc                encoding.Encoding
		encode             func([]byte) string
		text, query        string
	}{
		{"iso-8859-1 qp", "ISO-8859-1", "quoted-printable", charmap.ISO8859_1, qp, "Grüße aus Köln", "köln"},
		{"windows-1252 base64", "windows-1252", "base64", charmap.Windows1252, b64, "Prix: 10€ – “déjà vu”", "déjà"},
		{"iso-2022-jp 7bit", "ISO-2022-JP", "7bit", japanese.ISO2022JP, raw, "東京都の会議", "会議"},
		{"shift_jis base64", "Shift_JIS", "base64", japanese.ShiftJIS, b64, "大阪支店より", "支店"},
		{"koi8-r qp", "KOI8-R", "quoted-printable", charmap.KOI8R, qp, "Привет, Мир", "мир"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.encode(encodeCharset(t, tc.enc, tc.text))
			msg := crlf("From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=" + tc.charset +
				"\nContent-Transfer-Encoding: " + tc.cte + "\n\n" + body + "\n")
			ts := extract(t, k, Limits{}, AllFields(), msg, "").set()
			if !ts.matches(WordTokens(k, tc.query)) {
				t.Errorf("word %q not found in %s body", tc.query, tc.charset)
			}
		})
	}
	// A subject in an encoded word of another charset.
	subj := "=?KOI8-R?B?" + b64(encodeCharset(t, charmap.KOI8R, "Отчёт")) + "?="
	ts := extract(t, k, Limits{}, AllFields(), crlf("Subject: "+subj+"\n\nbody\n"), "").set()
	if !ts.matches(FieldWordTokens(k, FieldSubject, "ОТЧЁТ")) {
		t.Error("KOI8-R encoded-word subject not indexed")
	}
}

// TestExtractChunking: the result does not depend on how the message is cut
// into writes.
func TestExtractChunking(t *testing.T) {
	k := NewKey(testSecret())
	msgs := []string{crlf(fullMessage), fullMessage, strings.Repeat("東京都 ", 5000), bombMessage(20, 5)}
	for i, msg := range msgs {
		whole := extract(t, k, Limits{}, AllFields(), msg, "a@example.com", "b@example.com")
		write := func(cut func(rest int) int) Result {
			x := NewExtractor(k, Limits{}, AllFields())
			x.Envelope("a@example.com", []string{"b@example.com"})
			for b := []byte(msg); len(b) > 0; {
				n := cut(len(b))
				x.Write(b[:n])
				b = b[n:]
			}
			res, err := x.Finish()
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		rng := rand.New(rand.NewPCG(1, uint64(i)))
		for name, res := range map[string]Result{
			"1-byte": write(func(int) int { return 1 }),
			"random": write(func(rest int) int { return 1 + rng.IntN(min(rest, 9000)) }),
		} {
			if !slices.Equal(res.Tokens, whole.Tokens) || fmt.Sprint(res.Summary) != fmt.Sprint(whole.Summary) || res.Capped != whole.Capped {
				t.Errorf("message %d, %s writes: %d tokens, want %d; summary %+v, want %+v", i, name, len(res.Tokens), len(whole.Tokens), res.Summary, whole.Summary)
			}
		}
	}
}
