// Command benchtool is the Go half of test/bench/run.sh: the pieces of the
// benchmark that Postfix's smtp-source and smtp-sink cannot play.
//
//	benchtool port
//	    prints a free loopback TCP port.
//	benchtool postfix-services
//	    prints the standard services of a test Postfix's master.cf (the
//	    block test/e2e uses too).
//	benchtool config -o FILE -listen ADDR -next-hop ADDR -max-message-bytes N
//	        -keyring FILE -archive DIR -users FILE -audit-log FILE
//	    writes a mailvaultd configuration: the defaults with these settings,
//	    no HTTP listener, rendered by config.Marshal (no YAML template).
//	benchtool sink -listen ADDR
//	    a go-smtp server that only reads the data: the bare SMTP stack that
//	    mailvaultd's pipeline is compared with (row 2).
//	benchtool relay -listen ADDR -next-hop ADDR
//	    a go-smtp content filter that only passes each message on to the
//	    next hop (no archive, no crypto): what any after-queue filter costs
//	    Postfix, the floor mailvaultd's row 1 is measured against.
//	benchtool latency -addr ADDR -size N -rate R -count C [-sessions S]
//	    offers C messages of N bytes at R per second over at most S sessions
//	    and prints the p50/p99 time from the end of DATA (the body written)
//	    to the server's reply to "." (row 5).
//	benchtool commit -dir DIR -size N -count C [-sessions S]
//	    archive.Vault deposits into an fs store from S goroutines: messages
//	    per second and p50/p99 of Commit (before/after of the fs store).
//
// Output is one line of key=value pairs, for the script to parse.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool port|postfix-services|config|sink|relay|latency|commit [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "port":
		err = port()
	case "postfix-services":
		_, err = fmt.Print(testkit.PostfixServices)
	case "config":
		err = writeConfig(os.Args[2:])
	case "sink":
		err = sink(os.Args[2:])
	case "relay":
		err = relay(os.Args[2:])
	case "latency":
		err = latency(os.Args[2:])
	case "commit":
		err = commit(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// # port

func port() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

// # config

func writeConfig(args []string) error {
	fs := flag.NewFlagSet("config", flag.ExitOnError)
	out := fs.String("o", "", "the configuration file to write")
	c := config.Default()
	fs.StringVar(&c.SMTP.Listen, "listen", c.SMTP.Listen, "smtp.listen")
	fs.StringVar(&c.Forward.NextHop, "next-hop", "", "forward.next_hop (empty: store-only)")
	fs.Int64Var(&c.SMTP.MaxMessageBytes, "max-message-bytes", c.SMTP.MaxMessageBytes, "smtp.max_message_bytes")
	fs.StringVar(&c.Keys.Local.Keyring, "keyring", "", "keys.local.keyring")
	fs.StringVar(&c.Archive.FS.Dir, "archive", "", "archive.fs.dir")
	fs.StringVar(&c.Retrieval.UsersFile, "users", "", "retrieval.users_file")
	fs.StringVar(&c.Retrieval.AuditLog, "audit-log", "", "retrieval.audit_log")
	fs.Parse(args)
	if *out == "" {
		return errors.New("config: -o is required")
	}
	c.SMTP.Hostname = "mailvault.bench"
	// The built-in default (100), not configs/mailvaultd.yaml's 25: see run.sh.
	c.SMTP.MaxSessions = 100
	c.Retrieval.Listen = ""
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(*out, b, 0o600)
}

// # sink

func sink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:2526", "address to listen on")
	fs.Parse(args)
	return serveUntilSignal(*listen, "sink.test", func() smtp.Session { return discard{} })
}

// serveUntilSignal runs a go-smtp server with sessions from newSession on
// listen until SIGTERM or SIGINT.
func serveUntilSignal(listen, domain string, newSession func() smtp.Session) error {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return newSession(), nil }))
	srv.Domain = domain
	srv.MaxMessageBytes = 1 << 31
	srv.MaxRecipients = 1000
	srv.MaxLineLength = 64 << 10
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = 5 * time.Minute
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; l.Close() }()
	if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// discard reads the data and drops it, as the bare stack's cheapest session.
type discard struct{}

func (discard) Mail(string, *smtp.MailOptions) error { return nil }
func (discard) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discard) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (discard) Reset()                               {}
func (discard) Logout() error                        { return nil }

// # relay

func relay(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:10025", "address to listen on")
	nextHop := fs.String("next-hop", "127.0.0.1:10026", "where to pass messages on")
	fs.Parse(args)
	return serveUntilSignal(*listen, "relay.test", func() smtp.Session { return &relaySession{hop: *nextHop} })
}

// relaySession passes one session's transactions on over one connection.
type relaySession struct {
	hop string
	c   *smtp.Client
}

var errRelay = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "next hop failed"}

func (s *relaySession) Mail(from string, opts *smtp.MailOptions) error {
	if s.c == nil {
		c, err := smtp.Dial(s.hop)
		if err != nil {
			return errRelay
		}
		if err := c.Hello("relay.test"); err != nil {
			c.Close()
			return errRelay
		}
		s.c = c
	}
	if err := s.c.Mail(from, nil); err != nil {
		return errRelay
	}
	return nil
}

func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.c.Rcpt(to, nil); err != nil {
		return errRelay
	}
	return nil
}

func (s *relaySession) Data(r io.Reader) error {
	w, err := s.c.Data()
	if err != nil {
		return errRelay
	}
	if _, err := io.Copy(w, r); err != nil {
		s.c.Close()
		s.c = nil
		return errRelay
	}
	if err := w.Close(); err != nil {
		return errRelay
	}
	return nil
}

func (s *relaySession) Reset() {
	if s.c != nil {
		s.c.Reset()
	}
}

func (s *relaySession) Logout() error {
	if s.c != nil {
		s.c.Quit()
	}
	return nil
}

// # latency

func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:10025", "server")
	size := fs.Int("size", 10<<10, "message size in bytes")
	rate := fs.Float64("rate", 50, "messages offered per second")
	count := fs.Int("count", 1000, "messages")
	sessions := fs.Int("sessions", 8, "concurrent SMTP sessions at most")
	fs.Parse(args)

	jobs := make(chan int, *count)
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   atomic.Int64
		wg     sync.WaitGroup
		first  error
		tag    = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
		bodyOf = func(i int) []byte { return message(*size, fmt.Sprintf("%s-%d", tag, i)) }
	)
	for range *sessions {
		wg.Go(func() {
			var c *smtp.Client
			defer func() {
				if c != nil {
					c.Quit()
				}
			}()
			for i := range jobs {
				body := bodyOf(i)
				if c == nil {
					var err error
					if c, err = smtp.Dial(*addr); err != nil {
						errs.Add(1)
						mu.Lock()
						first = cmp(first, err)
						mu.Unlock()
						continue
					}
				}
				d, err := sendOne(c, body)
				mu.Lock()
				if err != nil {
					errs.Add(1)
					first = cmp(first, err)
					c.Close()
					c = nil
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	// Open loop: message i is offered at start + i/rate whether or not the
	// ones before it are done (they queue for a free session).
	start := time.Now()
	interval := time.Duration(float64(time.Second) / *rate)
	for i := range *count {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	fmt.Printf("sent=%d errors=%d offered_per_s=%.1f achieved_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		len(lat), errs.Load(), *rate, float64(len(lat))/elapsed.Seconds(), q(0.50), q(0.99), q(1))
	if first != nil {
		fmt.Fprintln(os.Stderr, "benchtool latency: first error:", first)
	}
	return nil
}

func cmp(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// sendOne runs one transaction and returns the time from the end of the
// body to the reply to ".".
func sendOne(c *smtp.Client, body []byte) (time.Duration, error) {
	if err := c.Mail("bench@example.test", nil); err != nil {
		return 0, err
	}
	if err := c.Rcpt("user@example.test", nil); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(body); err != nil {
		return 0, err
	}
	t := time.Now()
	if err := w.Close(); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

// message is a message of about size bytes whose Message-ID is unique, so
// that no two are duplicates for the archive.
func message(size int, id string) []byte {
	m := make([]byte, 0, size+100)
	m = fmt.Appendf(m, "From: bench@example.test\r\nTo: user@example.test\r\nSubject: bench\r\nMessage-ID: <%s@bench.test>\r\n\r\n", id)
	line := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n")
	for len(m)+len(line) <= size {
		m = append(m, line...)
	}
	return m
}

// # commit

func commit(args []string) error {
	fs := flag.NewFlagSet("commit", flag.ExitOnError)
	dir := fs.String("dir", "", "fs store directory (created)")
	size := fs.Int("size", 10<<10, "sealed message size in bytes")
	count := fs.Int("count", 500, "deposits")
	sessions := fs.Int("sessions", 8, "concurrent depositors")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("commit: -dir is required")
	}
	store, err := fsstore.New(*dir)
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	v := archive.NewVault(store, key)
	body := make([]byte, *size)
	rand.Read(body)
	manifest := body[:min(len(body), 600)]
	ctx := context.Background()

	var (
		mu   sync.Mutex
		lat  []time.Duration
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Pointer[error]
	)
	start := time.Now()
	for range *sessions {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(*count) {
					return
				}
				at := time.Now()
				d, err := v.Begin(ctx, archive.NewID(at))
				if err == nil {
					_, err = d.Write(body)
				}
				if err != nil {
					fail.CompareAndSwap(nil, &err)
					return
				}
				env := archive.Envelope{From: "sender@example.test", To: []string{fmt.Sprintf("user%d@example.test", i%50)}}
				h := v.Fingerprint(env)
				fmt.Fprint(h, i, at.UnixNano())
				h.Write(body)
				t := time.Now()
				_, _, err = d.Commit(ctx, archive.Record{Envelope: env, ReceivedAt: at,
					Meta: map[string]string{"mv-version": "1"}, Manifest: manifest, Fingerprint: h.Sum(nil)})
				if err != nil {
					fail.CompareAndSwap(nil, &err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := fail.Load(); p != nil {
		return *p
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	fmt.Printf("deposits=%d sessions=%d per_s=%.1f p50_ms=%.2f p99_ms=%.2f\n",
		len(lat), *sessions, float64(len(lat))/elapsed.Seconds(), q(0.5), q(0.99))
	return nil
}
