package usersfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/access"
)

// TestUsersFileMode is issue 10 item 14: the users file is refused, like
// the keyring, when group or others may read or write it, with an error
// that names the file, its mode and the chmod to run; Load, Reload and the
// editing commands all refuse it.
func TestUsersFileMode(t *testing.T) {
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o604, false}, {0o644, false}, {0o620, false}, {0o602, false}, {0o666, false},
	} {
		t.Run(fmt.Sprintf("%04o", c.mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.yaml")
			if _, err := Add(path, "alice", access.RoleReader, []string{"alice@example.com"}); err != nil {
				t.Fatal(err)
			}
			u, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			_, loadErr := Load(path)
			reloadErr := u.Reload()
			_, addErr := Add(path, "bob", access.RoleReader, []string{"bob@example.com"})
			for name, err := range map[string]error{"Load": loadErr, "Reload": reloadErr, "Add": addErr} {
				if c.ok && err != nil {
					t.Errorf("%s at %04o: %v", name, c.mode, err)
				}
				if !c.ok {
					want := []string{path, fmt.Sprintf("%04o", c.mode), "chmod 600 " + path}
					for _, w := range want {
						if err == nil || !strings.Contains(err.Error(), w) {
							t.Errorf("%s at %04o: error %v, want one naming %q", name, c.mode, err, w)
						}
					}
				}
			}
		})
	}
}
