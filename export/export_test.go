package export

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailvault/mailvaultd/listing"
)

type msg struct {
	id, from string
	raw      string
}

var msgs = []msg{
	{"a1", "x@example.org", "Subject: one\r\n\r\nFrom here on\r\n>From quoted\r\n>>From twice\r\nFrom\r\n>From_\r\n"},
	{"a2", "", "From the start\nFrom \n>\n>>\nFr\nFromage\n"},
	{"a3", "y@example.org", "Subject: empty body\r\n\r\n"},
	{"a4", "a b@example.org", "\n\nFrom \n\n"},
	{"a5", "z@example.org", ">>>>>From deep\n"},
}

func write(t *testing.T, f Format, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, f)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, m := range msgs {
		mw, err := w.Begin(m.id, m.from, at)
		if err != nil {
			t.Fatal(err)
		}
		// Writes of every size exercise the quoting across boundaries.
		for s := m.raw; s != ""; {
			n := min(chunk, len(s))
			if _, err := io.WriteString(mw, s[:n]); err != nil {
				t.Fatal(err)
			}
			s = s[n:]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMboxRoundTrip: every message comes back byte for byte through
// ReadMbox (mboxrd unquoting), however its bytes were split into writes,
// with the From_ line naming the sender.
func TestMboxRoundTrip(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 5, 7, 1 << 20} {
		b := write(t, Mbox, chunk)
		var got []msg
		err := ReadMbox(iotest.OneByteReader(bytes.NewReader(b)), func(fromLine string, raw []byte) error {
			got = append(got, msg{from: fromLine, raw: string(raw)})
			return nil
		})
		if err != nil {
			t.Fatalf("chunk %d: %v\n%s", chunk, err, b)
		}
		if len(got) != len(msgs) {
			t.Fatalf("chunk %d: %d messages, want %d:\n%s", chunk, len(got), len(msgs), b)
		}
		for i, m := range msgs {
			if got[i].raw != m.raw {
				t.Errorf("chunk %d: message %d = %q, want %q", chunk, i, got[i].raw, m.raw)
			}
			sender := m.from
			if sender == "" || strings.Contains(sender, " ") {
				sender = "MAILER-DAEMON"
			}
			if want := "From " + sender + " Thu Jan  2 03:04:05 2025"; got[i].from != want {
				t.Errorf("From_ line %q, want %q", got[i].from, want)
			}
		}
		// No line of a message body may start with "From " in the file.
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "From ") && !strings.HasSuffix(line, " 2025") {
				t.Errorf("unquoted From line %q", line)
			}
		}
	}
}

// TestZipRoundTrip: one <id>.eml per message, byte for byte.
func TestZipRoundTrip(t *testing.T) {
	b := write(t, Zip, 3)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != len(msgs) {
		t.Fatalf("%d files, want %d", len(zr.File), len(msgs))
	}
	for i, f := range zr.File {
		if f.Name != msgs[i].id+".eml" {
			t.Errorf("file %d named %q, want %s.eml", i, f.Name, msgs[i].id)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != msgs[i].raw {
			t.Errorf("%s = %q (%v), want %q", f.Name, got, err, msgs[i].raw)
		}
	}
}

func TestFormatOfFile(t *testing.T) {
	for name, want := range map[string]Format{"a.mbox": Mbox, "b.ZIP": Zip, "c.eml": "", "d": ""} {
		got, err := FormatOfFile(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("FormatOfFile(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// pagedLister lists n messages, ids m0.., page by page; odd ones are bob's.
type pagedLister struct{ n int }

func (l pagedLister) List(_ context.Context, q listing.Query) (listing.Page, error) {
	start := 0
	if q.Cursor != "" {
		start, _ = strconv.Atoi(q.Cursor)
	}
	var p listing.Page
	for i := start; i < min(start+q.Limit, l.n); i++ {
		to := "alice@example.com"
		if i%2 == 1 {
			to = "bob@example.com"
		}
		p.Messages = append(p.Messages, listing.Message{ID: fmt.Sprint("m", i), To: []string{to}})
	}
	if end := start + q.Limit; end < l.n {
		p.NextCursor = strconv.Itoa(end)
	}
	return p, nil
}

// TestCollect pages through the whole listing, keeps what may allows and
// refuses past max before returning any id.
func TestCollect(t *testing.T) {
	alice := func(_ string, to []string) bool { return to[0] == "alice@example.com" }
	for _, tc := range []struct {
		n, max  int
		may     func(string, []string) bool
		want    int
		tooMany bool
	}{
		{n: 450, max: 1000, want: 450},
		{n: 450, max: 1000, may: alice, want: 225},
		{n: 450, max: 225, may: alice, want: 225},
		{n: 450, max: 224, may: alice, tooMany: true},
		{n: 0, max: 10, want: 0},
	} {
		ids, err := Collect(context.Background(), pagedLister{tc.n}, listing.Query{}, tc.max, tc.may)
		if tc.tooMany {
			if !errors.Is(err, ErrTooMany) || ids != nil {
				t.Errorf("%+v: %d ids, %v; want ErrTooMany", tc, len(ids), err)
			}
			continue
		}
		if err != nil || len(ids) != tc.want {
			t.Errorf("%+v: %d ids, %v; want %d", tc, len(ids), err, tc.want)
		}
	}
}
