package blind

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/internal/memtest"
)

// bombMessage nests depth multiparts, each holding width text parts
// before the next level.
func bombMessage(depth, width int) string {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: bomb\r\n")
	for d := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", d)
		for w := range width {
			fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\nlevel%dpart%d\r\n", d, d, w)
		}
		fmt.Fprintf(&b, "--b%d\r\n", d)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
	for d := depth - 1; d >= 0; d-- {
		fmt.Fprintf(&b, "--b%d--\r\n", d)
	}
	return b.String()
}

func TestExtractBigBody(t *testing.T) {
	k := NewKey(testSecret())
	var body strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&body, "w%d ", i)
		if i%10 == 9 {
			body.WriteString("\r\n")
		}
	}
	msg := "From: a@example.com\r\nSubject: big body\r\n\r\n" + body.String()
	tests := []struct {
		name       string
		l          Limits
		capped     bool
		maxTokens  int
		lastInside bool // w49999 is indexed
	}{
		{"under the cap", Limits{MaxTokens: 60000, MaxPartTokens: 60000}, false, 60000, true},
		{"token cap", Limits{}, true, 20000, false},
		{"part cap", Limits{MaxPartTokens: 1000}, true, 1100, false},
		{"text cap", Limits{MaxTokens: 60000, MaxPartTokens: 60000, MaxPartText: 1000}, true, 300, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := extract(t, k, tc.l, AllFields(), msg, "a@example.com", "b@example.com")
			ts := res.set()
			if res.Capped != tc.capped {
				t.Errorf("Capped = %v, want %v", res.Capped, tc.capped)
			}
			// Party tokens are outside the cap; everything else within.
			if n := len(res.Tokens) - 2; n > tc.maxTokens {
				t.Errorf("%d tokens, cap %d", n, tc.maxTokens)
			}
			if !ts.matches(Match{{PartyToken(k, "b@example.com")}}) || !ts.matches(AddressTokens(k, FieldFrom, "a@example.com")) ||
				!ts.matches(FieldWordTokens(k, FieldSubject, "big")) || !ts.matches(WordTokens(k, "w0")) {
				t.Error("a party, header or first body token is missing")
			}
			if got := ts.matches(WordTokens(k, "w49999")); got != tc.lastInside {
				t.Errorf("last word indexed = %v, want %v", got, tc.lastInside)
			}
		})
	}
}

func TestExtractBomb(t *testing.T) {
	k := NewKey(testSecret())
	tests := []struct {
		name, msg, broken string
		found, missing    string
	}{
		{"deep nesting", bombMessage(1000, 1), "multipart nested too deep", "level10part0", "innermost"},
		{"many parts", bombMessage(1, 100000), "too many parts", "level0part100", "level0part99999"},
		{"within bounds", bombMessage(10, 10), "", "innermost", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := extract(t, k, Limits{}, AllFields(), tc.msg, "")
			ts := res.set()
			if res.Summary.Broken != tc.broken {
				t.Errorf("Broken = %q, want %q", res.Summary.Broken, tc.broken)
			}
			if !ts.matches(WordTokens(k, tc.found)) {
				t.Errorf("%q not indexed", tc.found)
			}
			if tc.missing != "" && ts.matches(WordTokens(k, tc.missing)) {
				t.Errorf("%q indexed past the bound", tc.missing)
			}
		})
	}
}

func TestExtractMalformed(t *testing.T) {
	k := NewKey(testSecret())
	tests := []struct {
		name, msg, broken string
		found             Match
	}{
		{"huge header line", "From: a@example.com\r\nSubject: early\r\nX-Big: " + strings.Repeat("x", 10<<20) + "\r\n\r\nbody\r\n",
			"header over the limit", FieldWordTokens(k, FieldSubject, "early")},
		{"many header fields", "Subject: early\r\n" + strings.Repeat("X-A: b\r\n", 1<<20) + "\r\nbody\r\n",
			"header over the limit", FieldWordTokens(k, FieldSubject, "early")},
		{"huge part header", "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirstpart\r\n--b\r\nX-Big: " +
			strings.Repeat("y", 5<<20) + "\r\n\r\nsecond\r\n--b--\r\n", "malformed multipart", WordTokens(k, "firstpart")},
		{"no boundary", "Subject: nob\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n", "multipart without a boundary", FieldWordTokens(k, FieldSubject, "nob")},
		{"unterminated multipart", "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nopenpart words", "unterminated part", WordTokens(k, "openpart")},
		{"bad base64", "Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\nd29y!!!ZHM=\r\n", "", FieldWordTokens(k, FieldSubject, "s")},
		{"unknown charset", "Subject: s\r\nContent-Type: text/plain; charset=x-nonesuch\r\n\r\nrawtext\r\n", "", WordTokens(k, "rawtext")},
		{"bad address header", "From: <<a@@b>>, \"unterminated <c@example.com>\r\n\r\nx\r\n", "", AddressTokens(k, FieldFrom, "c@example.com")},
		{"malformed first line", " leading space\r\nSubject: s\r\n\r\nx\r\n", "malformed header", nil},
		{"bare LF", "Subject: lf\n\nbodyword\n", "", WordTokens(k, "bodyword")},
		{"empty", "", "", nil},
		{"binary", "\x00\xff\xfe\r\n\r\n\x00", "malformed header", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := extract(t, k, Limits{}, AllFields(), tc.msg, "")
			if res.Summary.Broken != tc.broken {
				t.Errorf("Broken = %q, want %q", res.Summary.Broken, tc.broken)
			}
			if tc.found != nil && !res.set().matches(tc.found) {
				t.Error("what could be read was not indexed")
			}
		})
	}
}

func TestExtractSummaryBounds(t *testing.T) {
	k := NewKey(testSecret())
	var b strings.Builder
	b.WriteString("Subject: " + strings.Repeat("é", 1000) + "\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 100 {
		fmt.Fprintf(&b, "--b\r\nContent-Disposition: attachment; filename=\"f%d-%s.bin\"\r\n\r\nx\r\n", i, strings.Repeat("n", 600))
	}
	b.WriteString("--b--\r\n")
	s := extract(t, k, Limits{}, AllFields(), b.String(), "").Summary
	if len(s.Subject) > maxSummaryString || !strings.HasPrefix(s.Subject, "éé") || len(s.Attachments) != maxAttachments ||
		s.AttachmentsOmitted != 100-maxAttachments || len(s.Attachments[0].Name) > maxSummaryString || !s.HasAttachment {
		t.Errorf("subject %d bytes, %d attachments (+%d), name %d bytes", len(s.Subject), len(s.Attachments), s.AttachmentsOmitted, len(s.Attachments[0].Name))
	}
}

// TestExtractAbort: an aborted extractor releases its goroutine, and
// writes after the parse ended do not block.
func TestExtractAbort(t *testing.T) {
	k := NewKey(testSecret())
	before := runtime.NumGoroutine()
	for range 50 {
		x := NewExtractor(k, Limits{}, AllFields())
		x.Write([]byte("Subject: s\r\n\r\nbody"))
		x.Abort()
		x.Write([]byte("more")) // after Abort: dropped
	}
	// The parse ends at a header over the limit; the megabytes after it
	// are dropped without being read.
	x := NewExtractor(k, Limits{MaxHeaderBytes: 1024}, AllFields())
	x.Write([]byte("X: " + strings.Repeat("z", 4096)))
	for range 1000 {
		x.Write(make([]byte, 64<<10))
	}
	if res, _ := x.Finish(); res.Summary.Broken != "header over the limit" {
		t.Errorf("Broken = %q", res.Summary.Broken)
	}
	if _, err := x.Finish(); err == nil {
		t.Error("second Finish did not fail")
	}
	// Goroutines exit after done is closed; allow them to be scheduled
	// out, without asserting on time.
	for i := 0; runtime.NumGoroutine() > before+2 && i < 100; i++ {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines before, %d after", before, n)
	}
}

// bigMessage generates a multipart message of about size bytes without
// holding it: a text part of size/2 of words, then a base64 attachment.
type bigMessage struct {
	size, off int64
	head      string
	mid       string
	tail      string
}

func newBigMessage(size int64) *bigMessage {
	return &bigMessage{
		size: size,
		head: "From: a@example.com\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n",
		mid:  "\r\n--b\r\nContent-Type: application/octet-stream; name=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		tail: "\r\n--b--\r\n",
	}
}

func (m *bigMessage) Read(p []byte) (int, error) {
	if m.off >= m.size {
		return 0, io.EOF
	}
	n := 0
	half := m.size / 2
	for n < len(p) && m.off < m.size {
		var c byte
		switch o := m.off; {
		case o < int64(len(m.head)):
			c = m.head[o]
		case o < half:
			const text = "lorem ipsum dolor sit amet word1234 consectetur adipiscing elit\r\n"
			c = text[(o-int64(len(m.head)))%int64(len(text))]
		case o < half+int64(len(m.mid)):
			c = m.mid[o-half]
		case o >= m.size-int64(len(m.tail)):
			c = m.tail[o-(m.size-int64(len(m.tail)))]
		default:
			const line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
			c = line[(o-half-int64(len(m.mid)))%int64(len(line))]
		}
		p[n] = c
		n++
		m.off++
	}
	return n, nil
}

func TestExtractMemory(t *testing.T) {
	k := NewKey(testSecret())
	run := func(size int64) (uint64, Result) {
		var res Result
		peak := memtest.PeakHeap(func() {
			x := NewExtractor(k, Limits{}, AllFields())
			x.Envelope("a@example.com", []string{"b@example.com"})
			buf := make([]byte, 32<<10)
			io.CopyBuffer(x, newBigMessage(size), buf)
			res, _ = x.Finish()
		})
		return peak, res
	}
	run(1 << 20) // warm up
	small, _ := run(1 << 20)
	large, res := run(30 << 20)
	t.Logf("peak heap growth: 1 MB message %.1f MiB, 30 MB message %.1f MiB", float64(small)/(1<<20), float64(large)/(1<<20))
	if large > small+8<<20 {
		t.Errorf("peak heap for 30 MB is %d bytes, for 1 MB %d: memory grows with message size", large, small)
	}
	if s := res.Summary; len(s.Attachments) != 1 || s.Attachments[0].Size < 10<<20 || !res.set().matches(WordTokens(k, "word1234")) {
		t.Errorf("30 MB message: summary %+v", s)
	}
}

func FuzzExtractor(f *testing.F) {
	f.Add([]byte(crlf(fullMessage)), uint8(7))
	f.Add([]byte(bombMessage(40, 3)), uint8(1))
	f.Add([]byte("Subject: =?utf-8?q?x?=\r\nContent-Type: text/html\r\n\r\n<script>x</script><p>a&amp;b"), uint8(3))
	k := NewKey(testSecret())
	l := Limits{MaxTokens: 500, MaxPartTokens: 200, MaxDepth: 8, MaxParts: 50, MaxHeaderBytes: 4096, MaxPartText: 8192, MaxText: 16384}
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint8) {
		x := NewExtractor(k, l, AllFields())
		x.Envelope("a@example.com", []string{"b@example.com"})
		// Chunks of 1 byte to 64 KiB: every chunk boundary is covered by
		// TestExtractChunking; this covers their mix with broken input.
		step := 1 + int(chunk)*int(chunk)
		for b := msg; len(b) > 0; {
			n := min(step, len(b))
			if w, err := x.Write(b[:n]); w != n || err != nil {
				t.Fatalf("Write = %d, %v", w, err)
			}
			b = b[n:]
		}
		res, err := x.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tokens) > l.MaxTokens+2 {
			t.Fatalf("%d tokens over the cap", len(res.Tokens))
		}
		if len(res.Summary.Attachments) > maxAttachments || len(res.Summary.Subject) > maxSummaryString {
			t.Fatal("summary over its bounds")
		}
	})
}
