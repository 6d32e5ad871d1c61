package retrieval

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUsersAddListRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "users.yaml")
	alice, err := AddUser(path, "alice", RoleReader, []string{"Alice@Example.COM", "alice+lists@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := AddUser(path, "audit", RoleAuditor, nil)
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

	if _, err := AddUser(path, "alice", RoleReader, []string{"x@example.com"}); err == nil {
		t.Error("adding alice twice succeeded")
	}
	for _, bad := range []struct {
		name  string
		role  Role
		boxes []string
	}{
		{"", RoleReader, []string{"a@b"}},
		{"bob smith", RoleReader, []string{"a@b"}},
		{"bob", "admin", nil},
		{"bob", RoleReader, nil},
		{"bob", RoleReader, []string{"not-an-address"}},
		{"bob", RoleReader, []string{"a b@example.com"}},
	} {
		if _, err := AddUser(path, bad.name, bad.role, bad.boxes); err == nil {
			t.Errorf("AddUser(%q, %q, %q) succeeded", bad.name, bad.role, bad.boxes)
		}
	}

	list, err := ListUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Role != RoleAuditor {
		t.Fatalf("ListUsers = %+v", list)
	}

	u, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if u.Missing() || u.Len() != 2 {
		t.Fatalf("LoadUsers: missing=%v len=%d", u.Missing(), u.Len())
	}
	got, ok := u.Authenticate(alice)
	if !ok || got.Name != "alice" || got.Role != RoleReader {
		t.Fatalf("Authenticate(alice's token) = %+v, %v", got, ok)
	}
	if _, ok := u.Authenticate(alice[:42] + "x"); ok {
		t.Error("a wrong token authenticated")
	}
	if _, ok := u.Authenticate(""); ok {
		t.Error("the empty token authenticated")
	}

	if err := RemoveUser(path, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveUser(path, "alice"); err == nil {
		t.Error("removing a missing user succeeded")
	}
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Authenticate(alice); ok {
		t.Error("a removed user still authenticates after Reload")
	}
	if _, ok := u.Authenticate(audit); !ok {
		t.Error("the auditor no longer authenticates")
	}
}

func TestUsersKeepsComments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte("# who may read the archive\nusers: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := AddUser(path, "bob", RoleReader, []string{"bob@example.com"}); err != nil {
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
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatalf("LoadUsers(missing) = %v", err)
	}
	if !u.Missing() || u.Len() != 0 {
		t.Fatalf("missing file: Missing=%v Len=%d", u.Missing(), u.Len())
	}
	tok, err := AddUser(path, "carol", RoleAuditor, nil)
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
			if _, ok := u.Authenticate(tok); !ok {
				t.Fatal("a failed Reload dropped the loaded users")
			}
			if _, err := LoadUsers(path); err == nil {
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
	tok, err := AddUser(path, "dave", RoleReader, []string{"dave@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := LoadUsers(path)
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
				if _, ok := u.Authenticate(tok); !ok {
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
	th.succeed("9.9.9.9")
	if len(th.m) != 0 {
		t.Fatalf("table not empty: %v", th.m)
	}
}
