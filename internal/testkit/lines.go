package testkit

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lines keeps every line of a stream (a daemon's standard error) as it
// arrives and lets a test wait for the next line that contains a string. It
// never drops a line, however many arrive before a test looks, and it drains
// the stream to its end, so a writer never blocks on it.
type Lines struct {
	mu      sync.Mutex
	lines   []string
	next    int           // the first line Wait has not consumed
	ended   bool          // the stream reached its end (or failed)
	changed chan struct{} // closed, then replaced, on each new line and at the end
}

// ReadLines starts reading r into a Lines until r ends.
func ReadLines(r io.Reader) *Lines {
	l := &Lines{changed: make(chan struct{})}
	go l.read(r)
	return l
}

func (l *Lines) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			l.mu.Lock()
			l.lines = append(l.lines, strings.TrimSuffix(s, "\n"))
			l.notifyLocked()
			l.mu.Unlock()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.Append("testkit: reading the stream: " + err.Error())
			}
			l.mu.Lock()
			l.ended = true
			l.notifyLocked()
			l.mu.Unlock()
			return
		}
	}
}

// Append adds a line as if the stream had carried it (a test's own note).
func (l *Lines) Append(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	l.notifyLocked()
}

func (l *Lines) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Wait consumes lines up to and including the first one not yet consumed
// that contains want. It fails the test if the stream ends without such a
// line, or if none arrives within limit.
func (l *Lines) Wait(t testing.TB, want string, limit time.Duration) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for l.next < len(l.lines) {
			line := l.lines[l.next]
			l.next++
			if strings.Contains(line, want) {
				l.mu.Unlock()
				return
			}
		}
		ended, changed := l.ended, l.changed
		l.mu.Unlock()
		if ended {
			t.Fatalf("the stream ended without a line containing %q; it ended with:\n%s", want, tail(l.String()))
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no line containing %q within %v; the last lines:\n%s", want, limit, tail(l.String()))
		}
	}
}

// String returns every line so far, consumed or not.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// tail is the end of s, enough to see what happened without flooding the
// test's output.
func tail(s string) string {
	const n = 8000
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
