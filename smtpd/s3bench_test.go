package smtpd

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkArchiveS3 relays messages through mailvaultd (store-only) into a
// real MinIO with keys from the KMS test double, from 8 concurrent SMTP
// sessions, and reports messages per second and the p50/p99 time from the
// end of DATA to our 250 (the seal's final chunk, the S3 commit and the
// reply).
//
//	go test -run XXX -bench ArchiveS3 -benchtime 200x ./smtpd/
func BenchmarkArchiveS3(b *testing.B) {
	for _, size := range []int64{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			e := newEnv(b, envOpts{storeOnly: true, s3kms: true, maxBytes: 8 << 20})
			const sessions = 8
			var mu sync.Mutex
			var lat []time.Duration
			work := make(chan int)
			var wg sync.WaitGroup
			b.SetBytes(size)
			b.ResetTimer()
			start := time.Now()
			for s := 0; s < sessions; s++ {
				wg.Go(func() {
					c, err := smtp.Dial(e.addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					for range work {
						if err := c.Mail("a@example.test", nil); err != nil {
							b.Error(err)
							return
						}
						if err := c.Rcpt("b@example.test", nil); err != nil {
							b.Error(err)
							return
						}
						w, err := c.Data()
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := w.Write(uniqueMessage(size)); err != nil {
							b.Error(err)
							return
						}
						t := time.Now() // the body is written; what follows is ".", our commit and 250
						if err := w.Close(); err != nil {
							b.Error(err)
							return
						}
						d := time.Since(t)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				})
			}
			for i := 0; i < b.N; i++ {
				work <- i
			}
			close(work)
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

var messageSeq atomic.Int64

// uniqueMessage is a message of size bytes that no other call repeats, so
// that no two are duplicates of each other.
func uniqueMessage(size int64) []byte {
	m := make([]byte, 0, size)
	m = fmt.Appendf(m, "Subject: bench %d-%d\r\n\r\n", time.Now().UnixNano(), messageSeq.Add(1))
	line := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n")
	for int64(len(m)+len(line)) <= size {
		m = append(m, line...)
	}
	return m
}
