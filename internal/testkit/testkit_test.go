package testkit

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/internal/config"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// waitFails runs l.Wait on a fatalRecorder and returns its failure ("" if
// Wait returned).
func waitFails(t *testing.T, l *Lines, want string, limit time.Duration) string {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Wait(rec, want, limit)
	}()
	<-done
	return rec.msg
}

// TestLinesKeepsEveryLine: lines that arrive long before the test waits for
// them are all there, in order (the reader this replaces dropped lines once
// its channel of 1000 was full).
func TestLinesKeepsEveryLine(t *testing.T) {
	pr, pw := io.Pipe()
	l := ReadLines(pr)
	const n = 5000
	for i := range n {
		fmt.Fprintf(pw, "line %d\n", i)
	}
	fmt.Fprint(pw, "last line without a newline")
	pw.Close()
	for _, want := range []string{"line 0", "line 1000", "line 4999", "without a newline"} {
		if msg := waitFails(t, l, want, 10*time.Second); msg != "" {
			t.Fatal(msg)
		}
	}
	if got := strings.Count(l.String(), "\n") + 1; got != n+1 {
		t.Errorf("String has %d lines, want %d", got, n+1)
	}
	// Wait consumes: "line 1" was passed on the way to "line 1000"; every
	// line is consumed now.
	if msg := waitFails(t, l, "line 1", time.Second); !strings.Contains(msg, "ended without") {
		t.Errorf("waiting again for a consumed line: %q, want the stream-ended failure", msg)
	}
}

func TestLinesWaitsForALaterLine(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	l := ReadLines(pr)
	go func() {
		fmt.Fprintln(pw, "starting")
		fmt.Fprintln(pw, "mailvaultd ready")
	}()
	if msg := waitFails(t, l, "ready", 30*time.Second); msg != "" {
		t.Fatal(msg)
	}
}

func TestLinesFailures(t *testing.T) {
	pr, pw := io.Pipe()
	l := ReadLines(pr)
	fmt.Fprintln(pw, "something else")
	if msg := waitFails(t, l, "never", 50*time.Millisecond); !strings.Contains(msg, "within") || !strings.Contains(msg, "something else") {
		t.Errorf("timeout failure %q: want it to say so and show the lines", msg)
	}
	pw.Close()
	if msg := waitFails(t, l, "never", time.Minute); !strings.Contains(msg, "ended without") {
		t.Errorf("end-of-stream failure %q", msg)
	}
}

func TestSyncBufferAndLockedWriter(t *testing.T) {
	var b SyncBuffer
	var mu sync.Mutex
	var shared strings.Builder
	w := LockedWriter{Mu: &mu, W: &shared}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				w.Write([]byte("y"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(b.String()) != 800 || shared.Len() != 800 {
		t.Errorf("wrote %d and %d bytes, want 800 each", len(b.String()), shared.Len())
	}
}

func TestFreeAddrIsLoopbackAndFree(t *testing.T) {
	a := FreeAddr(t)
	if !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q", a)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func TestWriteConfigLoadsBack(t *testing.T) {
	dir := t.TempDir()
	c := Config(t, dir)
	c.Archive.Backend = "s3"
	c.Archive.S3.Bucket = "archive"
	c.Log.Level = "debug"
	path := WriteConfig(t, filepath.Join(dir, "mailvaultd.yaml"), c)
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("loaded %+v\nwant %+v", got, c)
	}
	if c.Forward.NextHop != "" || filepath.Dir(c.Keys.Local.Keyring) != dir || c.SMTP.Listen == c.Retrieval.Listen {
		t.Errorf("Config: next hop %q, keyring %s, listens %s %s", c.Forward.NextHop, c.Keys.Local.Keyring, c.SMTP.Listen, c.Retrieval.Listen)
	}
}

func TestWriteConfigRefusesAnInvalidConfig(t *testing.T) {
	c := Config(t, t.TempDir())
	c.Keys.Provider = "vault"
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WriteConfig(rec, filepath.Join(t.TempDir(), "x.yaml"), c)
	}()
	<-done
	if !strings.Contains(rec.msg, "keys.provider") {
		t.Errorf("WriteConfig of an invalid config: %q, want a failure naming keys.provider", rec.msg)
	}
}
