package partmap

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseValue(t *testing.T) {
	tests := []struct {
		in     string
		main   string
		params map[string]string
	}{
		{"", "", nil},
		{"Text/Plain", "text/plain", nil},
		{`text/plain; charset="UTF-8"`, "text/plain", map[string]string{"charset": "UTF-8"}},
		{"multipart/mixed; boundary=----=_Part_1_2.3", "multipart/mixed", map[string]string{"boundary": "----=_Part_1_2.3"}},
		{`multipart/mixed;boundary="a;b" ; ;`, "multipart/mixed", map[string]string{"boundary": "a;b"}},
		{`attachment; filename="a \"b\".txt"junk; size=3`, "attachment", map[string]string{"filename": `a "b".txt`, "size": "3"}},
		{`attachment; filename="C:\dir\f.doc"`, "attachment", map[string]string{"filename": `C:\dir\f.doc`}},
		{`attachment; filename=my file.pdf`, "attachment", map[string]string{"filename": "my file.pdf"}},
		{`attachment; filename="unterminated`, "attachment", map[string]string{"filename": "unterminated"}},
		{`a/b; X=1; x=2`, "a/b", map[string]string{"x": "1"}},
		{`a/b; =1; novalue; y=2`, "a/b", map[string]string{"y": "2"}},
		{"text/html charset=utf-8", "text/html", nil},
		{`a/b; filename*=UTF-8''%E2%82%AC.txt; filename=x.txt`, "a/b", map[string]string{"filename": "€.txt"}},
		{`a/b; filename*=iso-8859-1'en'caf%E9`, "a/b", map[string]string{"filename": "café"}},
		{`a/b; filename*=windows-1252''%93q%94`, "a/b", map[string]string{"filename": "“q”"}},
		{`a/b; filename*=koi8-r''%F0; filename=plain`, "a/b", map[string]string{"filename": "plain"}},
		{`a/b; filename*=no-quotes`, "a/b", map[string]string{}},
		{`a/b; name*0="long "; name*1="name"; name*2*=%21`, "a/b", map[string]string{"name": "long name!"}},
		{`a/b; name*1="gap"; name="plain"`, "a/b", map[string]string{"name": "plain"}},
		{`a/b; name*0*=utf-8''%C3; name*1*=%A9`, "a/b", map[string]string{"name": "é"}},
		{`a/b; name*00=x; name*999=y`, "a/b", map[string]string{"name*00": "x", "name*999": "y"}},
	}
	for _, tt := range tests {
		main, params := parseValue(tt.in)
		if main != tt.main || !(len(params) == 0 && len(tt.params) == 0 || reflect.DeepEqual(params, tt.params)) {
			t.Errorf("parseValue(%q) = %q, %q; want %q, %q", tt.in, main, params, tt.main, tt.params)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`C:\Windows\system32\evil.dll`, "evil.dll"},
		{"dir/", ""},
		{"..", ""},
		{" a\x00b\r\nc\x7f.txt ", "abc.txt"},
		{"=?UTF-8?B?Li4vZXZpbC50eHQ=?=", "evil.txt"},
		{"=?UTF-8?Q?caf=C3=A9.txt?=", "café.txt"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{strings.Repeat("é", 1000), strings.Repeat("é", 512)},
	}
	for _, tt := range tests {
		if got := cleanFilename(tt.in); got != tt.want {
			t.Errorf("cleanFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSummaryCaps(t *testing.T) {
	subject := strings.Repeat("ü", 3000) // 6000 bytes
	raw := []byte("Subject: " + subject + "\r\nFrom: =?utf-8?q?" + strings.Repeat("=C3=BC", 3000) + "?=\r\n\r\nx")
	pm := scanOnce(raw, Limits{})
	for name, v := range map[string]string{"Subject": pm.Header.Subject, "From": pm.Header.From} {
		if len(v) > maxSummaryBytes || len(v) < maxSummaryBytes-3 || !utf8.ValidString(v) {
			t.Errorf("%s: %d bytes, valid UTF-8 %v", name, len(v), utf8.ValidString(v))
		}
	}
}

// TestPartFieldCaps: a part's strings stay small whatever its header holds.
func TestPartFieldCaps(t *testing.T) {
	long := strings.Repeat("x", 2000)
	raw := []byte("Content-Type: text/" + long + "; charset=" + long + "; name=" + long + "\r\n" +
		"Content-Transfer-Encoding: " + long + "\r\nContent-Disposition: " + long + "\r\n\r\nbody")
	p := scanOnce(raw, Limits{}).Parts[0]
	if p.ContentType != "text/plain" || p.Charset != "" || p.TransferEncoding != "" || p.Disposition != "" || len(p.Filename) != maxFilenameBytes {
		t.Errorf("part = %+v", p)
	}
}

func TestDecodeWords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?q?a_b?= =?utf-8?q?c?=", "a bc"},
		{"=?iso-8859-15?q?=A4?=", "€"},
		{"=?latin1?q?=E9?=", "é"},
		{"=?us-ascii?q?ok?=", "ok"},
		{"=?x-unknown?q?a?= =?utf-8?q?b?=", "=?x-unknown?q?a?= =?utf-8?q?b?="},
		{"=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="},
		{"=?utf-8?q?=FF?=", "\uFFFD"},
	}
	for _, tt := range tests {
		if got := decodeWords(tt.in); got != tt.want {
			t.Errorf("decodeWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
