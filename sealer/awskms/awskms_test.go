package awskms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/testkit"
	"github.com/mailvault/mailvaultd/sealer"
)

type fixture struct {
	kms    *kmstest.Server
	keyARN string
	p      *Provider
	log    *testkit.SyncBuffer
}

// setup starts the KMS double and a Provider for alias/mailvault on it,
// through the real SDK with credentials from the default chain (the
// environment).
func setup(t *testing.T, o Options) *fixture {
	t.Helper()
	s := kmstest.Start(t)
	s.SetEnv(t)
	keyARN := s.CreateKey()
	s.CreateAlias("alias/mailvault", keyARN)
	logs := &testkit.SyncBuffer{}
	if o.KeyID == "" {
		o.KeyID = "alias/mailvault"
	}
	o.Endpoint = s.URL
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	p, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{kms: s, keyARN: keyARN, p: p, log: logs}
}

func TestRoundTrip(t *testing.T) {
	f := setup(t, Options{})
	ctx := context.Background()
	if f.p.Name() != "awskms" {
		t.Fatalf("Name() = %q", f.p.Name())
	}
	encCtx := sealer.ArchiveContext("0123abc")
	dk, err := f.p.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dk.Plaintext) != 32 || dk.KeyID != f.keyARN || dk.Provider != "awskms" || dk.Context[sealer.ContextArchiveID] != "0123abc" {
		t.Fatalf("data key: %d bytes, key id %q, provider %q, context %v", len(dk.Plaintext), dk.KeyID, dk.Provider, dk.Context)
	}
	if len(dk.Wrapped) == 0 || len(dk.Wrapped) > MaxWrappedKey {
		t.Fatalf("wrapped key of %d bytes", len(dk.Wrapped))
	}
	pt, err := f.p.Decrypt(ctx, dk.KeyID, dk.Wrapped, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pt, dk.Plaintext) {
		t.Fatal("Decrypt returned another key")
	}
	if err := f.p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if g, d := f.kms.Calls("GenerateDataKey"), f.kms.Calls("Decrypt"); g != 1 || d != 1 {
		t.Fatalf("KMS calls: %d GenerateDataKey, %d Decrypt; want 1 and 1", g, d)
	}
}

// TestCallsPerMessage is the figure for docs/S3.md: the write path costs one
// GenerateDataKey per message and nothing else.
func TestCallsPerMessage(t *testing.T) {
	f := setup(t, Options{})
	const messages = 25
	for i := range messages {
		dk, err := f.p.GenerateDataKey(context.Background(), sealer.ArchiveContext(fmt.Sprintf("msg%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		dk.Clear()
	}
	total := 0
	for _, op := range []string{"GenerateDataKey", "Decrypt", "Encrypt", "ReEncrypt", "DescribeKey"} {
		total += f.kms.Calls(op)
	}
	if g := f.kms.Calls("GenerateDataKey"); g != messages || total != messages {
		t.Fatalf("%d messages: %d GenerateDataKey, %d KMS calls in all", messages, g, total)
	}
	t.Logf("KMS calls per message on the write path: %d GenerateDataKey", f.kms.Calls("GenerateDataKey")/messages)
}

func TestDecryptRefusesMismatch(t *testing.T) {
	f := setup(t, Options{})
	ctx := context.Background()
	encCtx := sealer.ArchiveContext("aaa")
	dk, err := f.p.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := f.kms.CreateKey()
	tampered := bytes.Clone(dk.Wrapped)
	tampered[len(tampered)/2] ^= 0x40
	cases := []struct {
		name    string
		keyID   string
		wrapped []byte
		encCtx  map[string]string
		calls   int // KMS requests expected
	}{
		{"other context", dk.KeyID, dk.Wrapped, sealer.ArchiveContext("aab"), 1},
		{"no context", dk.KeyID, dk.Wrapped, nil, 1},
		{"other key", otherKey, dk.Wrapped, encCtx, 1},
		{"tampered", dk.KeyID, tampered, encCtx, 1},
		{"oversized", dk.KeyID, make([]byte, MaxWrappedKey+1), encCtx, 0},
		{"empty", dk.KeyID, nil, encCtx, 0},
		{"no key id", "", dk.Wrapped, encCtx, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.kms.ResetCalls()
			pt, err := f.p.Decrypt(ctx, c.keyID, c.wrapped, c.encCtx)
			if err == nil {
				t.Fatalf("Decrypt succeeded (%d bytes)", len(pt))
			}
			if !errors.Is(err, sealer.ErrDecrypt) || KindOf(err) != KindBadCiphertext || !IsPermanent(err) {
				t.Fatalf("err = %v (kind %v); want a bad-ciphertext error wrapping sealer.ErrDecrypt", err, KindOf(err))
			}
			if !strings.HasPrefix(err.Error(), "awskms: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			if got := f.kms.Calls("Decrypt"); got != c.calls {
				t.Fatalf("%d Decrypt calls, want %d", got, c.calls)
			}
		})
	}
}

func TestThrottlingIsTransientThenSucceeds(t *testing.T) {
	f := setup(t, Options{MaxAttempts: 3})
	ctx := context.Background()
	encCtx := sealer.ArchiveContext("t1")

	// Throttled throughout: every attempt is made, then a transient error.
	f.kms.SetFault(kmstest.Fault{Throttle: true})
	_, err := f.p.GenerateDataKey(ctx, encCtx)
	if err == nil {
		t.Fatal("GenerateDataKey succeeded while throttled")
	}
	if !IsTransient(err) || IsPermanent(err) {
		t.Fatalf("throttling classified %v: %v", KindOf(err), err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != "ThrottlingException" {
		t.Fatalf("err = %#v", err)
	}
	if got := f.kms.Calls("GenerateDataKey"); got != 3 {
		t.Fatalf("%d attempts, want 3 (MaxAttempts)", got)
	}
	if strings.Contains(f.log.String(), "KEY PROBLEM") {
		t.Fatalf("throttling was logged as a key problem:\n%s", f.log)
	}

	// Fault cleared: the next message works.
	f.kms.ClearFault()
	f.kms.ResetCalls()
	if _, err := f.p.GenerateDataKey(ctx, encCtx); err != nil {
		t.Fatalf("after the fault cleared: %v", err)
	}
	if got := f.kms.Calls("GenerateDataKey"); got != 1 {
		t.Fatalf("%d calls, want 1", got)
	}

	// Throttled twice: the SDK's backoff retries absorb it within one call.
	f.kms.ResetCalls()
	f.kms.SetFault(kmstest.Fault{Throttle: true, Times: 2})
	if _, err := f.p.GenerateDataKey(ctx, encCtx); err != nil {
		t.Fatalf("with two throttled attempts: %v", err)
	}
	if got := f.kms.Calls("GenerateDataKey"); got != 3 {
		t.Fatalf("%d attempts, want 3 (2 throttled + 1)", got)
	}
}

func TestServerErrorIsTransient(t *testing.T) {
	f := setup(t, Options{MaxAttempts: 2})
	f.kms.SetFault(kmstest.Fault{ServerError: true})
	_, err := f.p.GenerateDataKey(context.Background(), sealer.ArchiveContext("x"))
	if !IsTransient(err) {
		t.Fatalf("5xx classified %v: %v", KindOf(err), err)
	}
	if got := f.kms.Calls("GenerateDataKey"); got != 2 {
		t.Fatalf("%d attempts, want 2", got)
	}
}

func TestKeyProblemsArePermanentAndLoud(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(f *fixture)
		code   string
	}{
		{"disabled key", func(f *fixture) { f.kms.SetKeyEnabled(f.keyARN, false) }, "DisabledException"},
		{"access denied", func(f *fixture) { f.kms.SetFault(kmstest.Fault{AccessDenied: true}) }, "AccessDeniedException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t, Options{})
			ctx := context.Background()
			encCtx := sealer.ArchiveContext("k1")
			dk, err := f.p.GenerateDataKey(ctx, encCtx)
			if err != nil {
				t.Fatal(err)
			}
			c.break_(f)
			f.kms.ResetCalls()
			_, genErr := f.p.GenerateDataKey(ctx, encCtx)
			_, decErr := f.p.Decrypt(ctx, dk.KeyID, dk.Wrapped, encCtx)
			for op, err := range map[string]error{"generate": genErr, "decrypt": decErr} {
				var e *Error
				if !errors.As(err, &e) || e.Kind != KindKeyUnusable || e.Code != c.code {
					t.Fatalf("%s: err = %v; want key unusable (%s)", op, err, c.code)
				}
				if !IsPermanent(err) || IsTransient(err) || errors.Is(err, sealer.ErrDecrypt) {
					t.Fatalf("%s: misclassified: %v", op, err)
				}
			}
			// Not retried: a retry cannot fix it.
			if g, d := f.kms.Calls("GenerateDataKey"), f.kms.Calls("Decrypt"); g != 1 || d != 1 {
				t.Fatalf("calls: %d GenerateDataKey, %d Decrypt; want 1 and 1", g, d)
			}
			logs := f.log.String()
			if strings.Count(logs, "level=ERROR") != 2 || !strings.Contains(logs, "KEY PROBLEM") || !strings.Contains(logs, c.code) {
				t.Fatalf("key problem not logged loudly:\n%s", logs)
			}
			if err := f.p.Ping(ctx); !IsPermanent(err) {
				t.Fatalf("Ping: %v", err)
			}
		})
	}
}

func TestLatencyBeyondTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	f := setup(t, Options{Timeout: timeout, MaxAttempts: 2})
	f.kms.SetFault(kmstest.Fault{Latency: 10 * time.Second})
	start := time.Now()
	_, err := f.p.GenerateDataKey(context.Background(), sealer.ArchiveContext("slow"))
	took := time.Since(start)
	if err == nil {
		t.Fatal("GenerateDataKey succeeded past its timeout")
	}
	if !IsTransient(err) {
		t.Fatalf("timeout classified %v: %v", KindOf(err), err)
	}
	// Two attempts of 200ms and at most one backoff of MaxBackoff.
	bound := 2*timeout + MaxBackoff + 500*time.Millisecond
	if took > bound {
		t.Fatalf("took %v, bound %v", took, bound)
	}
	if got := f.kms.Calls("GenerateDataKey"); got != 2 {
		t.Fatalf("%d attempts, want 2 (a timed-out attempt is retried)", got)
	}
	t.Logf("failed after %v with %v", took, err)

	// A caller deadline shorter than one attempt wins.
	f.kms.ResetCalls()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := f.p.GenerateDataKey(ctx, sealer.ArchiveContext("slow")); err == nil || time.Since(start) > time.Second {
		t.Fatalf("caller deadline: %v after %v", err, time.Since(start))
	}
}

func TestUnreachableIsTransient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := kmstest.Start(t)
	s.SetEnv(t)
	p, err := New(context.Background(), Options{KeyID: "alias/x", Endpoint: "http://" + addr, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.GenerateDataKey(context.Background(), sealer.ArchiveContext("x"))
	if err == nil || !IsTransient(err) {
		t.Fatalf("connection refused: %v (kind %v)", err, KindOf(err))
	}
}

func TestNewValidates(t *testing.T) {
	s := kmstest.Start(t)
	s.SetEnv(t)
	for _, o := range []Options{
		{},
		{KeyID: "k", MaxAttempts: -1},
		{KeyID: "k", Timeout: -time.Second},
		{KeyID: "k", Endpoint: "127.0.0.1:1"},
	} {
		if _, err := New(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "awskms: ") {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
	t.Setenv("AWS_REGION", "")
	if _, err := New(context.Background(), Options{KeyID: "k"}); err == nil {
		t.Error("New without a region succeeded")
	}
}

func TestClassify(t *testing.T) {
	if KindOf(nil) != 0 || IsPermanent(nil) || IsTransient(nil) {
		t.Fatal("nil is classified")
	}
	if !IsTransient(context.DeadlineExceeded) || !IsTransient(errors.New("something")) {
		t.Fatal("unknown errors must be transient")
	}
	wrapped := fmt.Errorf("sealer: %w", &Error{Kind: KindKeyUnusable})
	if !IsPermanent(wrapped) {
		t.Fatal("a wrapped *Error lost its kind")
	}
}
