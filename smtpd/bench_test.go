package smtpd

import (
	"fmt"
	"net"
	"testing"

	"github.com/emersion/go-smtp"
)

// BenchmarkPipeline compares mailvaultd (store-only, fs archive, local
// keyring) with a bare go-smtp server that only reads the data: the cost of
// our pipeline over the SMTP stack, measured in the same run.
func BenchmarkPipeline(b *testing.B) {
	for _, size := range []int64{10 << 10, 1 << 20} {
		bare := startBareServer(b)
		b.Run(fmt.Sprintf("bare-go-smtp/%dKiB", size>>10), func(b *testing.B) { runBench(b, bare, size) })
		e := newEnv(b, envOpts{storeOnly: true})
		b.Run(fmt.Sprintf("mailvaultd/%dKiB", size>>10), func(b *testing.B) { runBench(b, e.addr, size) })
	}
}

func runBench(b *testing.B, addr string, size int64) {
	c, err := smtp.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		streamMessage(b, c, "a@example.test", newMessageReader(size))
	}
}

func startBareServer(tb testing.TB) string {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }))
	srv.Domain = "bare.test"
	srv.MaxMessageBytes = 1 << 30
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serveUntilCleanup(tb, srv, l)
	return l.Addr().String()
}
