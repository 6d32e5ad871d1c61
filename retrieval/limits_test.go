package retrieval

import (
	"strconv"
	"testing"
	"time"
)

func TestSignInThrottle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newSignInThrottle()
	th.now = func() time.Time { return now }
	for i := range freeFailures {
		if d := th.wait("1.2.3.4"); d != 0 {
			t.Fatalf("failure %d: wait %v, want 0", i, d)
		}
		th.fail("1.2.3.4")
	}
	if d := th.wait("1.2.3.4"); d != 0 {
		t.Fatalf("after %d failures: wait %v, want 0", freeFailures, d)
	}
	th.fail("1.2.3.4")
	if d := th.wait("1.2.3.4"); d != backoffBase {
		t.Fatalf("after %d failures: wait %v, want %v", freeFailures+1, d, backoffBase)
	}
	th.fail("1.2.3.4")
	if d := th.wait("1.2.3.4"); d != 2*backoffBase {
		t.Fatalf("wait %v, want %v", d, 2*backoffBase)
	}
	if d := th.wait("5.6.7.8"); d != 0 {
		t.Fatalf("another address waits %v", d)
	}
	for range 40 {
		th.fail("1.2.3.4")
	}
	if d := th.wait("1.2.3.4"); d != backoffMax {
		t.Fatalf("wait %v, want the cap %v", d, backoffMax)
	}
	now = now.Add(backoffForget + backoffMax + time.Second)
	if d := th.wait("1.2.3.4"); d != 0 {
		t.Fatalf("after an idle hour: wait %v", d)
	}
	th.fail("9.9.9.9")
	if d := th.wait("9.9.9.9"); d != 0 {
		t.Fatalf("a first failure waits %v", d)
	}
}

// TestThrottleTableIsBounded: failures from ever new pairs keep the table
// at maxTracked.
func TestThrottleTableIsBounded(t *testing.T) {
	th := newSignInThrottle()
	for i := range maxTracked + 10 {
		th.fail(strconv.Itoa(i))
	}
	if len(th.m) > maxTracked {
		t.Fatalf("%d entries, want at most %d", len(th.m), maxTracked)
	}
}
