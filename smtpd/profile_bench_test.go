package smtpd

import (
	"fmt"
	"testing"

	"github.com/emersion/go-smtp"
)

// BenchmarkDeliver is the hot path to profile: every message unique (so each
// is really archived, not answered as a duplicate), forwarded to a next hop
// that reads and drops it, one session.
//
//	go test -run XXX -bench Deliver -benchtime 3s -cpuprofile cpu.prof -memprofile mem.prof ./smtpd/
//	go tool pprof -top -cum smtpd.test cpu.prof
func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int64{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			e := newEnv(b, envOpts{maxBytes: 8 << 20, hopAddr: startDiscardHop(b)})
			c, err := smtp.Dial(e.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msgs := make([][]byte, 64)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(msgs) == 0 {
					b.StopTimer()
					for j := range msgs {
						msgs[j] = uniqueMessage(size)
					}
					b.StartTimer()
				}
				if err := c.Mail("a@example.test", nil); err != nil {
					b.Fatal(err)
				}
				if err := c.Rcpt("b@example.test", nil); err != nil {
					b.Fatal(err)
				}
				w, err := c.Data()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
