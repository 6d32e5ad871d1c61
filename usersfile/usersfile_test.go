package usersfile_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/usersfile"
)

// authenticate asks u about token as retrieval does: by its hash.
func authenticate(u *usersfile.Users, token string) (access.Principal, bool) {
	return u.Authenticate(access.HashToken(token))
}

func TestUsersAddListRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "users.yaml")
	alice, err := usersfile.Add(path, "alice", access.RoleReader, []string{"Alice@Example.COM", "alice+lists@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := usersfile.Add(path, "audit", access.RoleAuditor, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(alice) != 43 || alice == audit {
		t.Fatalf("tokens %q %q: want two distinct 43-character base64url tokens", alice, audit)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), alice) || strings.Contains(string(b), audit) {
		t.Fatal("the users file contains a token")
	}
	sum := sha256.Sum256([]byte(alice))
	if !strings.Contains(string(b), hex.EncodeToString(sum[:])) {
		t.Fatalf("the users file lacks the SHA-256 of alice's token:\n%s", b)
	}

	if _, err := usersfile.Add(path, "alice", access.RoleReader, []string{"x@example.com"}); err == nil {
		t.Error("adding alice twice succeeded")
	}
	for _, bad := range []struct {
		name  string
		role  access.Role
		boxes []string
	}{
		{"", access.RoleReader, []string{"a@b"}},
		{"bob smith", access.RoleReader, []string{"a@b"}},
		{"bob", "admin", nil},
		{"bob", access.RoleReader, nil},
		{"bob", access.RoleReader, []string{"not-an-address"}},
		{"bob", access.RoleReader, []string{"a b@example.com"}},
	} {
		if _, err := usersfile.Add(path, bad.name, bad.role, bad.boxes); err == nil {
			t.Errorf("usersfile.Add(%q, %q, %q) succeeded", bad.name, bad.role, bad.boxes)
		}
	}

	list, err := usersfile.List(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Role != access.RoleAuditor {
		t.Fatalf("ListUsers = %+v", list)
	}

	u, err := usersfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if u.Missing() || u.Len() != 2 {
		t.Fatalf("LoadUsers: missing=%v len=%d", u.Missing(), u.Len())
	}
	got, ok := authenticate(u, alice)
	if !ok || got.Name != "alice" || got.Role != access.RoleReader {
		t.Fatalf("Authenticate(alice's token) = %+v, %v", got, ok)
	}
	if _, ok := authenticate(u, alice[:42]+"x"); ok {
		t.Error("a wrong token authenticated")
	}
	if _, ok := authenticate(u, ""); ok {
		t.Error("the empty token authenticated")
	}

	if err := usersfile.Remove(path, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := usersfile.Remove(path, "alice"); err == nil {
		t.Error("removing a missing user succeeded")
	}
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := authenticate(u, alice); ok {
		t.Error("a removed user still authenticates after Reload")
	}
	if _, ok := authenticate(u, audit); !ok {
		t.Error("the auditor no longer authenticates")
	}
}

func TestUsersKeepsComments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte("# who may read the archive\nusers: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := usersfile.Add(path, "bob", access.RoleReader, []string{"bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "# who may read the archive") {
		t.Errorf("comment lost:\n%s", b)
	}
	if !strings.Contains(string(b), "mailboxes: [bob@example.com]") {
		t.Errorf("unexpected layout:\n%s", b)
	}
}

func TestUsersMissingAndInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.yaml")
	u, err := usersfile.Load(path)
	if err != nil {
		t.Fatalf("usersfile.Load(missing) = %v", err)
	}
	if !u.Missing() || u.Len() != 0 {
		t.Fatalf("missing file: Missing=%v Len=%d", u.Missing(), u.Len())
	}
	tok, err := usersfile.Add(path, "carol", access.RoleAuditor, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(); err != nil || u.Missing() || u.Len() != 1 {
		t.Fatalf("Reload: %v missing=%v len=%d", err, u.Missing(), u.Len())
	}
	good, _ := os.ReadFile(path)

	for name, body := range map[string]string{
		"unknown key":  "users:\n  - name: x\n    role: auditor\n    token_sha256: " + strings.Repeat("a", 64) + "\n    password: hunter2\n",
		"bad role":     "users:\n  - name: x\n    role: admin\n    token_sha256: " + strings.Repeat("a", 64) + "\n",
		"short hash":   "users:\n  - name: x\n    role: auditor\n    token_sha256: abc\n",
		"upper hash":   "users:\n  - name: x\n    role: auditor\n    token_sha256: " + strings.Repeat("A", 64) + "\n",
		"duplicate":    "users:\n  - {name: x, role: auditor, token_sha256: " + strings.Repeat("a", 64) + "}\n  - {name: x, role: auditor, token_sha256: " + strings.Repeat("b", 64) + "}\n",
		"not yaml":     "users: [\n",
		"top-level":    "people: []\n",
		"no mailboxes": "users:\n  - name: x\n    role: reader\n    token_sha256: " + strings.Repeat("a", 64) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := u.Reload(); err == nil {
				t.Fatal("Reload accepted an invalid file")
			}
			if _, ok := authenticate(u, tok); !ok {
				t.Fatal("a failed Reload dropped the loaded users")
			}
			if _, err := usersfile.Load(path); err == nil {
				t.Fatal("LoadUsers accepted an invalid file")
			}
		})
	}
	os.WriteFile(path, good, 0o600)
	os.Remove(path)
	if err := u.Reload(); err != nil || !u.Missing() || u.Len() != 0 {
		t.Fatalf("Reload after removal: %v missing=%v len=%d", err, u.Missing(), u.Len())
	}
}

func TestUsersReloadConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	tok, err := usersfile.Add(path, "dave", access.RoleReader, []string{"dave@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := usersfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, ok := authenticate(u, tok); !ok {
					t.Error("authentication failed during reloads")
					return
				}
			}
		}()
	}
	for range 50 {
		if err := u.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
}
