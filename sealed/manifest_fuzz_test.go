package sealed_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/partmap"
	"github.com/mailvault/mailvaultd/sealed"
)

// FuzzDecodeManifest treats arbitrary bytes as an opened manifest. (A
// manifest is sealed, so in practice its bytes come from our own encoder;
// this guards the decoder against whatever a bug or a future version might
// store.) DecodeManifest must never panic, and what it accepts must keep
// its promises: the supported version, a size that is not negative, every
// part's range inside the message, and a manifest that encodes and decodes
// back to itself.
//
// Seeds are in testdata/fuzz/FuzzDecodeManifest; the ones written here are
// the shapes EncodeManifest produces.
func FuzzDecodeManifest(f *testing.F) {
	for _, m := range seedManifests() {
		b, err := sealed.EncodeManifest(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"size":10,"parts":[{"offset":9223372036854775807,"length":9223372036854775807}]}`))
	f.Add([]byte(`{"v":1,"size":-1}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"V":2}`))
	f.Add([]byte(`{"v":1,"received_at":"0000-01-01T00:00:00Z","to":null,"parts":null}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := sealed.DecodeManifest(b)
		if err != nil {
			if m != nil {
				t.Fatalf("DecodeManifest returned a manifest with the error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "sealed: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			return
		}
		checkManifest(t, m)
		again, err := sealed.EncodeManifest(m)
		if err != nil {
			t.Fatalf("a decoded manifest does not encode: %v", err)
		}
		m2, err := sealed.DecodeManifest(again)
		if err != nil {
			t.Fatalf("a re-encoded manifest does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(m)) differs from m:\n%+v\n%+v", m, m2)
		}
		// Encoding is deterministic: the second round gives the same bytes.
		if third, _ := sealed.EncodeManifest(m2); !bytes.Equal(third, again) {
			t.Fatalf("encoding is not stable:\n%s\n%s", again, third)
		}
	})
}

func checkManifest(t *testing.T, m *sealed.Manifest) {
	t.Helper()
	if m.Version != sealed.ManifestVersion {
		t.Fatalf("accepted version %d", m.Version)
	}
	if m.Size < 0 {
		t.Fatalf("accepted size %d", m.Size)
	}
	for i, p := range m.Parts {
		if p.Offset < 0 || p.Length < 0 || p.Offset > m.Size || p.Offset+p.Length > m.Size || p.Offset+p.Length < 0 {
			t.Fatalf("accepted part %d [%d,+%d) of a %d-byte message", i, p.Offset, p.Length, m.Size)
		}
	}
}

func seedManifests() []*sealed.Manifest {
	at := time.Date(2026, 11, 23, 11, 52, 0, 123456789, time.UTC)
	return []*sealed.Manifest{
		{ID: archive.NewID(at), ReceivedAt: at, From: "a@example.test", To: []string{"b@example.test"}, Size: 120,
			Header: partmap.Header{From: "A <a@example.test>", Subject: "hello", MessageID: "<1@example.test>"},
			Parts:  []partmap.Part{{Index: 0, Path: "1", ContentType: "text/plain", Charset: "utf-8", Offset: 60, Length: 60, DecodedSize: 60}}},
		{ID: archive.NewID(at), ReceivedAt: at, From: "", To: []string{"b@example.test", "用户@例子.test"}, Size: 5000,
			Header: partmap.Header{Subject: "Grüße"},
			Parts: []partmap.Part{
				{Index: 0, Path: "1.1", ContentType: "text/plain", Offset: 200, Length: 100, DecodedSize: 100},
				{Index: 1, Path: "1.2", ContentType: "text/html", TransferEncoding: "quoted-printable", Offset: 400, Length: 200, DecodedSize: 180},
				{Index: 2, Path: "2", ContentType: "application/pdf", TransferEncoding: "base64", Disposition: "attachment",
					Filename: "report.pdf", Offset: 700, Length: 4200, DecodedSize: 3100},
			}},
		{ID: archive.NewID(at), ReceivedAt: at, Size: 0, Broken: "unterminated multipart",
			Parts: []partmap.Part{{Path: "1", ContentType: "application/octet-stream"}}},
	}
}
