// Package testkit holds what mailvaultd's tests share: a loopback port picker,
// concurrency-safe log buffers, a lossless reader of a daemon's log lines,
// test configurations built from config.Config (written with
// config.Marshal, never from a YAML template), and the Postfix master.cf
// services a test Postfix runs.
//
// It is imported only from _test.go files and the programs under test/; the
// daemon never imports it. It starts nothing and listens on nothing itself.
package testkit

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address (127.0.0.1:port) that was free a
// moment ago. Another process may take it before the caller listens; tests
// accept that small window rather than pass listeners around.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer is a bytes.Buffer that concurrent writers (a logger used from
// several goroutines) and a reader may share.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LockedWriter writes to W under Mu, for a writer whose reader holds the
// same mutex (a test that prints a log it shares with the code under test).
type LockedWriter struct {
	Mu *sync.Mutex
	W  io.Writer
}

func (l LockedWriter) Write(p []byte) (int, error) {
	l.Mu.Lock()
	defer l.Mu.Unlock()
	return l.W.Write(p)
}

var _ io.Writer = LockedWriter{}
