package retrieval

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/sealed"
	"github.com/mailvault/mailvaultd/sealer"
)

// TestObjectCopiedUnderAnotherID pins docs/FORMAT.md §5 step 2 and §6: the
// format binds an object to its metadata, not to the key it is stored
// under, so a reader must check that the metadata and the manifest name the
// id it was asked for, and must open the manifest with the message's
// metadata. Someone who can write to the store copies message B's objects
// over message A's; reading A must fail, generically, and never give B's
// bytes as A.
func TestObjectCopiedUnderAnotherID(t *testing.T) {
	for _, tc := range []struct {
		name   string
		copied []string // suffixes of msg/<id> copied from B onto A
	}{
		{"message and manifest", []string{"", ".manifest"}},
		{"message only", []string{""}},
		{"manifest only", []string{".manifest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			at := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
			env := archive.Envelope{From: "x@other.org", To: []string{"alice@example.com"}}
			mailB := simpleMail("subject of B", "body of B")
			idA := f.deposit(env, simpleMail("subject of A", "body of A"), at)
			idB := f.deposit(env, mailB, at.Add(time.Minute))
			objects := filepath.Join(f.dir, "archive", "objects", "msg")
			for _, suffix := range tc.copied {
				b, err := os.ReadFile(filepath.Join(objects, idB+suffix+"~"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(objects, idA+suffix+"~"), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			for _, path := range []string{"/v1/messages/" + idA, "/v1/messages/" + idA + "/raw", "/v1/messages/" + idA + "/parts/0"} {
				res := f.get(path, f.tokens["alice"])
				if res.status != 500 || string(res.body) != "{\"error\":\"internal error\"}\n" {
					t.Errorf("%s: %d %q; want 500 and the generic body", path, res.status, res.body)
				}
			}
			var buf bytes.Buffer
			if _, err := sealed.Copy(context.Background(), f.vault, f.keys, idA, &buf); !errors.Is(err, sealer.ErrDecrypt) {
				t.Errorf("sealed.Copy(A) = %v; want sealer.ErrDecrypt", err)
			}
			if buf.Len() != 0 {
				t.Errorf("sealed.Copy(A) wrote %d bytes", buf.Len())
			}
			f.logMu.Lock()
			logged := f.logs.String()
			f.logMu.Unlock()
			if !strings.Contains(logged, "failed authentication") {
				t.Errorf("the failure was not logged as an authentication failure:\n%s", logged)
			}

			// B itself is untouched.
			buf.Reset()
			if _, err := sealed.Copy(context.Background(), f.vault, f.keys, idB, &buf); err != nil || !bytes.Equal(buf.Bytes(), mailB) {
				t.Errorf("sealed.Copy(B) = %q, %v; want B's bytes", buf.Bytes(), err)
			}
		})
	}
}
