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
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// PeakHeap samples the live heap every 2 ms while f runs and returns its
// peak growth over the heap before f (after a GC): what a memory bound test
// asserts, without reading a wall clock.
func PeakHeap(f func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}
