package smtpd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/internal/kmstest"
)

// TestS3AndKMSFaults: with the production backends, an unreachable archive
// or a throttled key service is a 451, and Postfix's retry afterwards is
// archived exactly once.
func TestS3AndKMSFaults(t *testing.T) {
	e := newEnv(t, envOpts{s3kms: true})
	from, to := "a@example.test", []string{"b@example.test"}
	msg := func(i int) []byte {
		return crlf(fmt.Sprintf("Subject: fault %d\nMessage-ID: <f%d@example.test>\n\nbody %d\n", i, i, i))
	}

	t.Run("MinIO stopped, then restarted", func(t *testing.T) {
		e.minio.Stop()
		res := e.send(t, from, to, msg(1), nil)
		if res.code != 451 {
			t.Fatalf("archive down: reply %d %q, want 451", res.code, res.text)
		}
		if n := len(e.hop.messages()); n != 0 {
			t.Fatalf("next hop received %d messages while the archive was down", n)
		}
		e.minio.Restart()
		// Postfix retries the same queue file.
		res = e.send(t, from, to, msg(1), nil)
		if res.code != 250 {
			t.Fatalf("retry: reply %d %q", res.code, res.text)
		}
		again := e.send(t, from, to, msg(1), nil) // a lost 250: re-sent once more
		if again.id() != res.id() {
			t.Errorf("re-sent message got id %s, want %s", again.id(), res.id())
		}
		if ids := e.archivedIDs(t); len(ids) != 1 {
			t.Fatalf("archive has %d messages, want 1", len(ids))
		}
	})
	t.Run("KMS throttling, then success", func(t *testing.T) {
		e.kms.SetFault(kmstest.Fault{Throttle: true, Ops: []string{"GenerateDataKey"}})
		res := e.send(t, from, to, msg(2), nil)
		if res.code != 451 || strings.Contains(strings.ToLower(res.text), "throttl") {
			t.Fatalf("throttled: reply %d %q, want 451 without internals", res.code, res.text)
		}
		e.kms.ClearFault()
		if res := e.send(t, from, to, msg(2), nil); res.code != 250 {
			t.Fatalf("after throttling: reply %d %q", res.code, res.text)
		}
	})
	t.Run("KMS access denied is a 451, never a bounce", func(t *testing.T) {
		e.kms.SetFault(kmstest.Fault{AccessDenied: true})
		res := e.send(t, from, to, msg(3), nil)
		e.kms.ClearFault()
		if res.code != 451 {
			t.Fatalf("reply %d %q, want 451", res.code, res.text)
		}
	})
	t.Run("one GenerateDataKey per message", func(t *testing.T) {
		e.kms.ResetCalls()
		for i := 10; i < 15; i++ {
			if res := e.send(t, from, to, msg(i), nil); res.code != 250 {
				t.Fatalf("reply %d %q", res.code, res.text)
			}
		}
		if n := e.kms.Calls("GenerateDataKey"); n != 5 {
			t.Errorf("GenerateDataKey called %d times for 5 messages", n)
		}
		if n := e.kms.Calls("Decrypt"); n != 0 {
			t.Errorf("Decrypt called %d times on the write path", n)
		}
	})
}
