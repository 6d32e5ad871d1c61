package partmap

import (
	"fmt"
	"io"
	"testing"
)

// benchMessage is a message of about size bytes: a text part, a
// quoted-printable HTML part and base64 attachments of 1 MB each (or less).
func benchMessage(size int) []byte {
	var b []byte
	b = append(b, "From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=bench\r\n\r\n"+
		"--bench\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"+
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nplease find the files attached.\r\n"+
		"--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"...)
	for range 200 {
		b = append(b, "<p style=3D\"color: red\">Caf=C3=A9 au lait, tr=C3=A8s bien, and a long line that wr=\r\naps softly.</p>\r\n"...)
	}
	b = append(b, "--alt--\r\n"...)
	for i := 0; len(b) < size; i++ {
		n := min(1<<20, (size-len(b))*3/4)
		b = fmt.Appendf(b, "--bench\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"+
			"Content-Disposition: attachment; filename=\"file%d.bin\"\r\n\r\n", i)
		b = append(b, base64Lines(randomBytes(uint64(i), max(n, 1)), 76, "\r\n")...)
		b = append(b, "\r\n"...)
	}
	return append(b, "--bench--\r\n"...)
}

// BenchmarkScan scans in 32 KiB writes, as the SMTP pipeline does.
func BenchmarkScan(b *testing.B) {
	for _, size := range []int{1 << 20, 25 << 20} {
		raw := benchMessage(size)
		b.Run(fmt.Sprintf("%dMB", size>>20), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				s := NewScanner(Limits{})
				for p := raw; len(p) > 0; {
					n := min(len(p), 32<<10)
					s.Write(p[:n])
					p = p[n:]
				}
				if pm := s.Close(); pm.Broken != "" {
					b.Fatal(pm.Broken)
				}
			}
		})
	}
}

// BenchmarkDecode decodes a 1 MB base64 part, as retrieval does.
func BenchmarkDecode(b *testing.B) {
	raw := benchMessage(1 << 20)
	pm := scanOnce(raw, Limits{})
	p := pm.Parts[len(pm.Parts)-1]
	body := raw[p.Offset : p.Offset+p.Length]
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := io.Copy(io.Discard, Decode(newBytesReader(body), p.TransferEncoding)); err != nil {
			b.Fatal(err)
		}
	}
}

type bytesReader struct{ b []byte }

func newBytesReader(b []byte) *bytesReader { return &bytesReader{b} }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
