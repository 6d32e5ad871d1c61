package partmap

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"

	message "github.com/emersion/go-message"
)

// partSummary is what the expectation table looks at: the tree, not the
// offsets (the golden files pin those).
func partSummary(pm *PartMap) string {
	var b strings.Builder
	for i, p := range pm.Parts {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s", p.Path, p.ContentType)
	}
	return b.String()
}

func body(raw []byte, p Part) string { return string(raw[p.Offset : p.Offset+p.Length]) }

func decoded(t *testing.T, raw []byte, p Part) string {
	t.Helper()
	b, err := io.ReadAll(Decode(bytes.NewReader(raw[p.Offset:p.Offset+p.Length]), p.TransferEncoding))
	if err != nil {
		t.Errorf("part %s: Decode: %v", p.Path, err)
	}
	return string(b)
}

// TestScanExpectations says in words what each golden message must give,
// so that a regenerated golden file cannot quietly bless a regression.
func TestScanExpectations(t *testing.T) {
	inputs := goldenInputs(t)
	tests := []struct {
		file   string
		parts  string
		broken string
		check  func(t *testing.T, raw []byte, pm *PartMap)
	}{
		{"plain", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			h := pm.Header
			if h.From != "Alice <alice@example.org>" || h.To != "Bob <bob@example.net>" || h.Subject != "Lunch" ||
				h.Date != "Mon, 2 Mar 2026 10:00:00 +0100" || h.MessageID != "<plain-1@example.org>" || h.Cc != "" {
				t.Errorf("Header = %+v", h)
			}
			p := pm.Parts[0]
			if p.Charset != "us-ascii" || body(raw, p) != "Shall we have lunch at noon?\r\n\r\nAlice\r\n" || p.DecodedSize != p.Length {
				t.Errorf("part = %+v, body %q", p, body(raw, p))
			}
		}},
		{"alternative", "1=text/plain 2=text/html", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if pm.Header.Cc != "Carol <carol@example.net>, Dave <dave@example.net>" {
				t.Errorf("Cc = %q (folded header)", pm.Header.Cc)
			}
			if got := decoded(t, raw, pm.Parts[0]); got != "Café au lait, très bien. This line is soft-broken over two lines in the source." {
				t.Errorf("text = %q", got)
			}
			if got := decoded(t, raw, pm.Parts[1]); got != "<p>Café au lait</p>    \r\n<p>= equals</p>" {
				t.Errorf("html = %q", got)
			}
			if pm.Parts[1].Charset != "utf-8" || pm.Parts[1].TransferEncoding != "quoted-printable" {
				t.Errorf("html part = %+v", pm.Parts[1])
			}
		}},
		{"nested", "1.1=text/plain 1.2=text/html 2=application/octet-stream 3=application/octet-stream 4=application/octet-stream 5.1=image/png", "", func(t *testing.T, raw []byte, pm *PartMap) {
			want := map[string]struct {
				name string
				data []byte
			}{
				"2":   {"a.bin", bytes.Repeat(byteRange(256), 3)},
				"3":   {"b.bin", []byte{0}},
				"4":   {"c.bin", nil},
				"5.1": {"d.png", sevens(1000)},
			}
			for _, p := range pm.Parts {
				w, ok := want[p.Path]
				if !ok {
					continue
				}
				if p.Filename != w.name || p.TransferEncoding != "base64" || p.DecodedSize != int64(len(w.data)) {
					t.Errorf("part %s = %+v", p.Path, p)
				}
				if got := decoded(t, raw, p); got != string(w.data) {
					t.Errorf("part %s decodes to %d bytes, not the attachment", p.Path, len(got))
				}
			}
			if got := body(raw, pm.Parts[0]); got != "See the attached files." {
				t.Errorf("first part body %q: the CRLF before a delimiter is not the part's", got)
			}
		}},
		{"8bit", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			p := pm.Parts[0]
			if p.TransferEncoding != "8bit" || !strings.Contains(body(raw, p), "Grüße aus Köln") || p.DecodedSize != p.Length {
				t.Errorf("part = %+v", p)
			}
		}},
		{"smtputf8", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			h := pm.Header
			if h.From != "Jürgen Müller <jürgen@bücher.example>" || h.To != "李雷 <lilei@例子.测试>" || h.Subject != "Grüße, 你好" {
				t.Errorf("Header = %+v", h)
			}
		}},
		{"rfc2047", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			h := pm.Header
			if h.From != "André Pirard <PIRARD@vm1.ulg.ac.be>" {
				t.Errorf("From = %q", h.From)
			}
			if h.To != "李雷 <lilei@example.org>, “quoted” <q@example.org>" {
				t.Errorf("To = %q", h.To)
			}
			if h.Cc != "=?KOI8-R?B?8NLJ18XU?= <koi@example.org>" {
				t.Errorf("Cc = %q: an unknown charset is kept raw", h.Cc)
			}
			if h.Subject != "Éléphant et souris plain tail" {
				t.Errorf("Subject = %q", h.Subject)
			}
		}},
		{"rfc2231", "1=application/pdf 2=text/plain 3=application/octet-stream 4=application/octet-stream 5=application/octet-stream 6=application/msword", "", func(t *testing.T, raw []byte, pm *PartMap) {
			names := []string{"€ rates été.pdf", "café-menu.txt", "éspañol.txt", "boot.ini", "passwd", "report.doc"}
			for i, n := range names {
				if pm.Parts[i].Filename != n {
					t.Errorf("part %d: Filename %q, want %q", i, pm.Parts[i].Filename, n)
				}
			}
			if pm.Parts[0].Disposition != "attachment" || decoded(t, raw, pm.Parts[0]) != "%PDF-" {
				t.Errorf("part 0 = %+v", pm.Parts[0])
			}
		}},
		{"broken-unterminated", "1=text/plain 2=text/plain", "unterminated multipart", func(t *testing.T, raw []byte, pm *PartMap) {
			last := pm.Parts[1]
			if last.Offset+last.Length != int64(len(raw)) || !strings.HasSuffix(body(raw, last), "end of the message\r\n") {
				t.Errorf("last part %+v does not run to the end", last)
			}
		}},
		{"broken-base64", "1=application/octet-stream 2=application/octet-stream", "bad base64 in part 2", func(t *testing.T, raw []byte, pm *PartMap) {
			if got := decoded(t, raw, pm.Parts[0]); got != "Hello, world!" {
				t.Errorf("good part = %q", got)
			}
			p := pm.Parts[1]
			if p.DecodedSize != 6 { // "Hello," before the '*'
				t.Errorf("bad part DecodedSize = %d, want 6", p.DecodedSize)
			}
			b, err := io.ReadAll(Decode(strings.NewReader(body(raw, p)), p.TransferEncoding))
			if string(b) != "Hello," || err == nil {
				t.Errorf("Decode = %q, %v; want what decodes, then an error", b, err)
			}
		}},
		{"broken-noboundary", "1=application/octet-stream", "multipart without boundary", func(t *testing.T, raw []byte, pm *PartMap) {
			p := pm.Parts[0]
			if !strings.HasPrefix(body(raw, p), "--b\r\n") || p.Offset+p.Length != int64(len(raw)) {
				t.Errorf("opaque part = %+v", p)
			}
		}},
		{"header-only", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			p := pm.Parts[0]
			if p.Offset != int64(len(raw)) || p.Length != 0 || pm.Header.Subject != "Nothing but a header" {
				t.Errorf("part = %+v, header %+v", p, pm.Header)
			}
		}},
		{"header-only-part", "1=text/plain 2=text/plain 3=text/plain 4=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			for _, p := range pm.Parts[:3] {
				if p.Length != 0 {
					t.Errorf("part %s: Length %d, want 0", p.Path, p.Length)
				}
			}
			if got := body(raw, pm.Parts[3]); got != "body" {
				t.Errorf("last body = %q", got)
			}
		}},
		{"dots", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if got := body(raw, pm.Parts[0]); got != ".\r\n..\r\n...leading dots\r\n. \r\n.end\r\n" {
				t.Errorf("body = %q", got)
			}
		}},
		{"barelf", "1=text/plain 2=application/octet-stream", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if got := decoded(t, raw, pm.Parts[0]); got != "line one continued\nline two" {
				t.Errorf("text = %q", got)
			}
			if got := decoded(t, raw, pm.Parts[1]); got != string(byteRange(10)) {
				t.Errorf("binary = %q", got)
			}
		}},
		{"rfc822", "1=text/plain 2=message/rfc822", "", func(t *testing.T, raw []byte, pm *PartMap) {
			p := pm.Parts[1]
			if !strings.HasPrefix(body(raw, p), "From: Bob") || !strings.HasSuffix(body(raw, p), "--innerfwd--") || p.Filename != "original.eml" {
				t.Errorf("rfc822 part = %+v: %q", p, body(raw, p))
			}
		}},
		{"preamble", "1=text/plain 2=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if body(raw, pm.Parts[0]) != "one" || body(raw, pm.Parts[1]) != "two" {
				t.Errorf("bodies %q %q", body(raw, pm.Parts[0]), body(raw, pm.Parts[1]))
			}
		}},
		{"noheader", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if pm.Parts[0].Offset != 0 || pm.Parts[0].Length != int64(len(raw)) || pm.Header != (Header{}) {
				t.Errorf("map = %+v", pm)
			}
		}},
		{"nul", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if body(raw, pm.Parts[0]) != "nul\x00in\x00body\r\n" || pm.Header.Subject != "NUL\x00bytes" {
				t.Errorf("map = %+v", pm)
			}
		}},
		{"digest", "1=message/rfc822 2=text/plain", "", nil},
		{"nested-unterminated", "1.1=text/plain 2=text/plain", "unterminated multipart", func(t *testing.T, raw []byte, pm *PartMap) {
			if got := body(raw, pm.Parts[0]); got != "inner part ends at the outer delimiter" {
				t.Errorf("inner body %q", got)
			}
		}},
		{"qp", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			want := "soft break at the end \r\ntrailing blanks dropped\r\n= lower € and a bad escape =ZZ and =4\r\n" + strings.Repeat("x", 5000) + "end"
			if got := decoded(t, raw, pm.Parts[0]); got != want {
				t.Errorf("decoded %q", got)
			}
		}},
		{"barecr", "1=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if got := body(raw, pm.Parts[0]); got != "bare\rcr\r\r\n--cr\r\r\nnot a delimiter above" {
				t.Errorf("body %q", got)
			}
			if pm.Header.Subject != "Bare\rCR" {
				t.Errorf("Subject %q", pm.Header.Subject)
			}
		}},
		{"empty", "1=text/plain", "", nil},
		{"mixed-endings", "1=text/plain 2=text/plain", "", func(t *testing.T, raw []byte, pm *PartMap) {
			if body(raw, pm.Parts[0]) != "lf body" || decoded(t, raw, pm.Parts[1]) != "ABC" {
				t.Errorf("bodies %q %q", body(raw, pm.Parts[0]), body(raw, pm.Parts[1]))
			}
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			raw, ok := inputs[tt.file]
			if !ok {
				t.Fatalf("no testdata/%s.eml", tt.file)
			}
			pm, _ := Scan(bytes.NewReader(raw), Limits{})
			if got := partSummary(pm); got != tt.parts {
				t.Errorf("parts = %s\nwant    %s", got, tt.parts)
			}
			if pm.Broken != tt.broken {
				t.Errorf("Broken = %q, want %q", pm.Broken, tt.broken)
			}
			if tt.check != nil && !t.Failed() {
				tt.check(t, raw, pm)
			}
		})
	}
	for name := range inputs {
		if !seen[name] {
			t.Errorf("testdata/%s.eml has no expectation here", name)
		}
	}
}

func byteRange(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func sevens(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func base64Lines(data []byte, lineLen int, nl string) string {
	enc := base64.StdEncoding.EncodeToString(data)
	if lineLen <= 0 {
		return enc
	}
	var b strings.Builder
	for len(enc) > lineLen {
		b.WriteString(enc[:lineLen])
		b.WriteString(nl)
		enc = enc[lineLen:]
	}
	b.WriteString(enc)
	return b.String()
}

type attachment struct {
	path, name, te string
	data           []byte
}

// attachmentMessage builds a nested multipart/mixed message with binary
// attachments of awkward sizes in base64 (with several line lengths) and
// quoted-printable, using nl as the line ending.
func attachmentMessage(t testing.TB, nl string) ([]byte, []attachment) {
	t.Helper()
	var atts []attachment
	var b strings.Builder
	w := func(s string) { b.WriteString(strings.ReplaceAll(s, "\n", nl)) }
	w("From: a@example.org\nSubject: attachments\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_outer_=\"\n\npreamble\n")
	w("--=_outer_=\nContent-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain\n\nhello\n--alt\nContent-Type: text/html\n\n<p>hello</p>\n--alt--\n")
	n := 1
	add := func(parent string, data []byte, te string, lineLen int) {
		n++
		path := fmt.Sprint(n)
		if parent != "" {
			path = parent
		}
		name := fmt.Sprintf("file%d-%d.bin", n, len(data))
		var enc string
		switch te {
		case "base64":
			enc = base64Lines(data, lineLen, nl)
		case "quoted-printable":
			var qb bytes.Buffer
			qw := quotedprintable.NewWriter(&qb)
			qw.Binary = true
			qw.Write(data)
			qw.Close()
			enc = strings.ReplaceAll(qb.String(), "\r\n", nl)
		}
		w(fmt.Sprintf("--=_outer_=\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: %s\nContent-Disposition: attachment; filename=%q\n\n", te, name))
		b.WriteString(enc)
		w("\n")
		atts = append(atts, attachment{path, name, te, data})
	}
	sizes := []int{0, 1, 2, 3, 4, 56, 57, 58, 1000, 65536 + 7}
	for i, size := range sizes {
		add("", randomBytes(uint64(i), size), "base64", []int{76, 64, 0, 4}[i%4])
	}
	for i, size := range []int{0, 1, 75, 76, 77, 5000} {
		add("", randomBytes(uint64(100+i), size), "quoted-printable", 0)
	}
	// A nested multipart with two more attachments.
	n++
	nested := fmt.Sprint(n)
	w("--=_outer_=\nContent-Type: multipart/mixed; boundary=\"nested\"\n\n")
	for i, size := range []int{300 << 10, 3} {
		data := randomBytes(uint64(200+i), size)
		name := fmt.Sprintf("nested%d.bin", i)
		w(fmt.Sprintf("--nested\nContent-Type: application/octet-stream; name=%q\nContent-Transfer-Encoding: base64\n\n", name))
		b.WriteString(base64Lines(data, 76, nl))
		w("\n")
		atts = append(atts, attachment{fmt.Sprintf("%s.%d", nested, i+1), name, "base64", data})
	}
	w("--nested--\n--=_outer_=--\nepilogue\n")
	return []byte(b.String()), atts
}

// TestAttachmentsRoundTrip: for each attachment, Decode of its part's byte
// range gives back the original bytes exactly, and DecodedSize says how
// many there are, with CRLF and with bare LF line endings.
func TestAttachmentsRoundTrip(t *testing.T) {
	for _, nl := range []string{"\r\n", "\n"} {
		t.Run(fmt.Sprintf("%q", nl), func(t *testing.T) {
			raw, atts := attachmentMessage(t, nl)
			pm := scanOnce(raw, Limits{})
			if pm.Broken != "" {
				t.Fatalf("Broken = %q", pm.Broken)
			}
			checkInvariants(t, raw, pm, Limits{})
			byPath := map[string]Part{}
			for _, p := range pm.Parts {
				byPath[p.Path] = p
			}
			if len(pm.Parts) != 2+len(atts) {
				t.Errorf("%d parts, want %d: %s", len(pm.Parts), 2+len(atts), partSummary(pm))
			}
			for _, a := range atts {
				p, ok := byPath[a.path]
				if !ok {
					t.Errorf("no part %s", a.path)
					continue
				}
				got, err := io.ReadAll(Decode(bytes.NewReader(raw[p.Offset:p.Offset+p.Length]), p.TransferEncoding))
				if err != nil || !bytes.Equal(got, a.data) {
					t.Errorf("part %s (%s, %d bytes): Decode gives %d bytes, err %v", a.path, a.te, len(a.data), len(got), err)
				}
				if p.DecodedSize != int64(len(a.data)) {
					t.Errorf("part %s: DecodedSize %d, want %d", a.path, p.DecodedSize, len(a.data))
				}
				if p.Filename != a.name || p.TransferEncoding != a.te {
					t.Errorf("part %s: %+v", a.path, p)
				}
			}
		})
	}
}

// TestAgainstGoMessage reads the well-formed testdata messages with
// go-message as well: the same leaves, with the same decoded bodies.
func TestAgainstGoMessage(t *testing.T) {
	inputs := goldenInputs(t)
	inputs["generated-attachments"], _ = attachmentMessage(t, "\r\n")
	for _, name := range []string{"plain", "alternative", "nested", "8bit", "smtputf8", "rfc2047", "rfc2231",
		"dots", "barelf", "rfc822", "preamble", "nul", "generated-attachments"} {
		t.Run(name, func(t *testing.T) {
			raw := inputs[name]
			var want []string
			var walk func(e *message.Entity)
			walk = func(e *message.Entity) {
				if mr := e.MultipartReader(); mr != nil {
					for {
						p, err := mr.NextPart()
						if err == io.EOF {
							return
						}
						if err != nil && !message.IsUnknownCharset(err) {
							t.Fatalf("go-message: %v", err)
						}
						walk(p)
					}
				}
				b, err := io.ReadAll(e.Body)
				if err != nil {
					t.Fatalf("go-message body: %v", err)
				}
				want = append(want, string(b))
			}
			e, err := message.Read(bytes.NewReader(raw))
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				t.Fatalf("go-message: %v", err)
			}
			walk(e)
			pm := scanOnce(raw, Limits{})
			if len(pm.Parts) != len(want) {
				t.Fatalf("%d parts, go-message sees %d", len(pm.Parts), len(want))
			}
			for i, p := range pm.Parts {
				if got := decoded(t, raw, p); got != want[i] {
					t.Errorf("part %s: %q\ngo-message: %q", p.Path, trunc(got), trunc(want[i]))
				}
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func TestLimitsDefaults(t *testing.T) {
	got := Limits{MaxDepth: -1}.withDefaults()
	if got != (Limits{MaxDepth: 32, MaxParts: 1000, MaxHeaderBytes: 65536}) {
		t.Errorf("defaults = %+v", got)
	}
	if got := (Limits{MaxDepth: 3, MaxParts: 4, MaxHeaderBytes: 5}).withDefaults(); got != (Limits{3, 4, 5}) {
		t.Errorf("withDefaults changed set limits: %+v", got)
	}
}

// TestSmallLimits drives each bound with small limits on ordinary input.
func TestSmallLimits(t *testing.T) {
	inputs := goldenInputs(t)
	tests := []struct {
		file   string
		limits Limits
		parts  string
		broken string
	}{
		{"nested", Limits{MaxDepth: 1}, "1=application/octet-stream 2=application/octet-stream 3=application/octet-stream 4=application/octet-stream 5=application/octet-stream", "nesting depth over 1"},
		{"nested", Limits{MaxParts: 3}, "1.1=text/plain 1.2=text/html 2=application/octet-stream", "more than 3 parts"},
		{"nested", Limits{MaxParts: 1}, "1.1=application/octet-stream", "more than 1 parts"},
		{"plain", Limits{MaxHeaderBytes: 100}, "1=application/octet-stream", "header over 100 bytes"},
		{"alternative", Limits{MaxHeaderBytes: 300}, "1=text/plain 2=text/html", ""},
		{"alternative", Limits{MaxHeaderBytes: 60}, "1=application/octet-stream", "header over 60 bytes"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%+v", tt.file, tt.limits), func(t *testing.T) {
			raw := inputs[tt.file]
			pm := scanOnce(raw, tt.limits)
			checkInvariants(t, raw, pm, tt.limits)
			checkDecodedSizes(t, raw, pm)
			if got := partSummary(pm); got != tt.parts {
				t.Errorf("parts = %s\nwant    %s", got, tt.parts)
			}
			if pm.Broken != tt.broken {
				t.Errorf("Broken = %q, want %q", pm.Broken, tt.broken)
			}
		})
	}
}
