// Package usersfile owns the users file: a YAML list of the people who may
// read the archive, each with a role, their mailboxes and the SHA-256 of
// their bearer token. It loads and reloads the file (strictly: unknown keys,
// duplicate names and malformed entries are errors), adds, lists and removes
// users (keeping the file's comments, replacing it atomically with mode
// 0600), issues tokens, and answers retrieval's one question: whose token
// has this hash.
//
// usersfile never keeps a token (only its hash), never authorises (retrieval
// decides what a principal may read) and never serves a request.
package usersfile

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
)

// User is one entry of the users file. The token itself is never stored:
// TokenSHA256 is the hex SHA-256 of the token string as presented.
type User struct {
	Name        string      `yaml:"name"`
	Role        access.Role `yaml:"role"`
	Mailboxes   []string    `yaml:"mailboxes,omitempty,flow"`
	TokenSHA256 string      `yaml:"token_sha256"`
}

// usersFile is the YAML document: a single key "users".
type usersFile struct {
	Users []User `yaml:"users"`
}

const (
	maxUsersFileBytes = 4 << 20
	tokenBytes        = 32
)

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// principal is a loaded user, ready for authentication.
type principal struct {
	p    access.Principal
	hash access.TokenHash
}

// Users is the set of users loaded from the users file. It is safe for
// concurrent use; Reload swaps the whole set atomically.
type Users struct {
	path    string
	set     atomic.Pointer[[]*principal]
	missing atomic.Bool
	mu      sync.Mutex // serialises Reload
}

// Load reads the users file at path. A missing file is not an error: it
// gives an empty set (nobody can sign in) on which Missing reports true, so
// that the caller can log a warning.
func Load(path string) (*Users, error) {
	u := &Users{path: path}
	if err := u.Reload(); err != nil {
		return nil, err
	}
	return u, nil
}

// Reload reads the users file again and replaces the set in one step;
// requests in flight finish with the set they started with. If the file is
// invalid the current set stays and the error says why. If the file has been
// removed, the set becomes empty and Missing reports true.
func (u *Users) Reload() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	f, exists, err := readUsersFile(u.path)
	if err != nil {
		return err
	}
	set := make([]*principal, 0, len(f.Users))
	for _, usr := range f.Users {
		p, err := newPrincipal(usr)
		if err != nil {
			return fmt.Errorf("usersfile: %s: user %q: %w", u.path, usr.Name, err)
		}
		set = append(set, p)
	}
	u.set.Store(&set)
	u.missing.Store(!exists)
	return nil
}

// Missing reports whether the users file did not exist at the last load.
func (u *Users) Missing() bool { return u.missing.Load() }

// Len is the number of users loaded.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	if s := u.set.Load(); s != nil {
		return len(*s)
	}
	return 0
}

// Path is the users file.
func (u *Users) Path() string { return u.path }

// Authenticate returns the user whose token has the hash h. Every user's
// hash is compared, in constant time, whatever matches.
func (u *Users) Authenticate(h access.TokenHash) (access.Principal, bool) {
	if u == nil {
		return access.Principal{}, false
	}
	s := u.set.Load()
	if s == nil {
		return access.Principal{}, false
	}
	var found *principal
	for _, p := range *s {
		if subtle.ConstantTimeCompare(h[:], p.hash[:]) == 1 {
			found = p
		}
	}
	if found == nil {
		return access.Principal{}, false
	}
	p := found.p
	p.Mailboxes = slices.Clone(p.Mailboxes)
	return p, true
}

func newPrincipal(usr User) (*principal, error) {
	if err := validateUser(usr); err != nil {
		return nil, err
	}
	p := &principal{p: access.Principal{Name: usr.Name, Role: usr.Role}}
	if _, err := hex.Decode(p.hash[:], []byte(usr.TokenSHA256)); err != nil {
		return nil, errors.New("token_sha256 is not hex")
	}
	for _, mb := range usr.Mailboxes {
		n := archive.NormalizeAddress(mb)
		if !slices.Contains(p.p.Mailboxes, n) {
			p.p.Mailboxes = append(p.p.Mailboxes, n)
		}
	}
	return p, nil
}

func validateUser(usr User) error {
	if !userNameRE.MatchString(usr.Name) {
		return errors.New("name must be 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit")
	}
	switch usr.Role {
	case access.RoleReader:
		if len(usr.Mailboxes) == 0 {
			return errors.New("a reader needs at least one mailbox")
		}
	case access.RoleAuditor:
	default:
		return fmt.Errorf("role %q is neither %q nor %q", usr.Role, access.RoleReader, access.RoleAuditor)
	}
	for _, mb := range usr.Mailboxes {
		if err := access.ValidateMailbox(mb); err != nil {
			return err
		}
	}
	if len(usr.TokenSHA256) != 2*sha256.Size || strings.ToLower(usr.TokenSHA256) != usr.TokenSHA256 {
		return errors.New("token_sha256 must be 64 lower-case hex digits")
	}
	if _, err := hex.DecodeString(usr.TokenSHA256); err != nil {
		return errors.New("token_sha256 must be 64 lower-case hex digits")
	}
	return nil
}

// readUsersFile parses path strictly (unknown keys are an error). exists is
// false for a missing file.
func readUsersFile(path string) (f usersFile, exists bool, err error) {
	b, err := readBounded(path)
	if errors.Is(err, fs.ErrNotExist) {
		return usersFile{}, false, nil
	}
	if err != nil {
		return usersFile{}, false, fmt.Errorf("usersfile: %w", err)
	}
	if err := decodeUsers(b, &f); err != nil {
		return usersFile{}, true, fmt.Errorf("usersfile: %s: %w", path, err)
	}
	seen := make(map[string]bool, len(f.Users))
	for _, usr := range f.Users {
		if seen[usr.Name] {
			return usersFile{}, true, fmt.Errorf("usersfile: %s: user %q appears twice", path, usr.Name)
		}
		seen[usr.Name] = true
	}
	return f, true, nil
}

// readBounded reads the users file, refusing one that group or others may
// read or write: the same rule as the keyring's (sealer refuses a keyring
// with any of 077 set). A token hash is not a token, but a writable file lets
// anyone add themselves as an auditor, and a readable one tells who may read
// what.
func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("users file %s has mode %04o, which lets group or others read or write it; run chmod 600 %s", path, perm, path)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(fh, maxUsersFileBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxUsersFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxUsersFileBytes)
	}
	return buf.Bytes(), nil
}

func decodeUsers(b []byte, f *usersFile) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// NewToken returns a fresh token (32 random bytes, base64url without padding)
// and the hex SHA-256 that the users file stores for it.
func NewToken() (token, sha256Hex string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("usersfile: token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	h := access.HashToken(token)
	return token, hex.EncodeToString(h[:]), nil
}

// Add adds a user to the users file at path (creating the file, mode
// 0600, and its directory, mode 0700, if needed) and returns the new token.
// The token is not stored anywhere: the caller shows it once.
// The file is replaced atomically; comments and other users are kept.
func Add(path, name string, role access.Role, mailboxes []string) (string, error) {
	token, sum, err := NewToken()
	if err != nil {
		return "", err
	}
	usr := User{Name: name, Role: role, Mailboxes: mailboxes, TokenSHA256: sum}
	if err := validateUser(usr); err != nil {
		return "", fmt.Errorf("usersfile: add user %q: %w", name, err)
	}
	err = editUsersFile(path, func(f *usersFile, seq *yaml.Node) error {
		for _, u := range f.Users {
			if u.Name == name {
				return fmt.Errorf("usersfile: add user %q: a user of that name exists", name)
			}
		}
		var n yaml.Node
		if err := n.Encode(usr); err != nil {
			return err
		}
		seq.Content = append(seq.Content, &n)
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// Remove removes the user called name from the users file.
func Remove(path, name string) error {
	return editUsersFile(path, func(f *usersFile, seq *yaml.Node) error {
		for i, n := range seq.Content {
			var u User
			if err := n.Decode(&u); err != nil {
				return err
			}
			if u.Name == name {
				seq.Content = append(seq.Content[:i], seq.Content[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("usersfile: remove user %q: no such user", name)
	})
}

// List returns the users of the file at path (none for a missing file).
func List(path string) ([]User, error) {
	f, _, err := readUsersFile(path)
	if err != nil {
		return nil, err
	}
	for _, u := range f.Users {
		if err := validateUser(u); err != nil {
			return nil, fmt.Errorf("usersfile: %s: user %q: %w", path, u.Name, err)
		}
	}
	return f.Users, nil
}

// editUsersFile reads path as a YAML node tree (so that comments survive),
// lets edit change the "users" sequence and writes the result atomically.
func editUsersFile(path string, edit func(f *usersFile, seq *yaml.Node) error) error {
	f, exists, err := readUsersFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if exists {
		b, err := readBounded(path)
		if err != nil {
			return fmt.Errorf("usersfile: %w", err)
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("usersfile: %s: %w", path, err)
		}
	}
	seq := usersSequence(&doc)
	if err := edit(&f, seq); err != nil {
		return err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("usersfile: %s: encode: %w", path, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("usersfile: %s: encode: %w", path, err)
	}
	// Check that what is written loads.
	var check usersFile
	if err := decodeUsers(out.Bytes(), &check); err != nil {
		return fmt.Errorf("usersfile: %s: re-read: %w", path, err)
	}
	return writeFileAtomic(path, out.Bytes())
}

// usersSequence returns the sequence node under the top-level "users" key,
// creating the document, the key or the sequence as needed.
func usersSequence(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode {
		*doc = yaml.Node{Kind: yaml.DocumentNode}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "users" {
			v := m.Content[i+1]
			if v.Kind != yaml.SequenceNode {
				*v = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			}
			v.Style = 0
			return v
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "users"}
	v := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	m.Content = append(m.Content, k, v)
	return v
}

// writeFileAtomic replaces path with b: a temporary file in the same
// directory, mode 0600, owned like the file it replaces (when we may), synced,
// renamed over path, and the directory synced.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	if st, err := os.Stat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			// Keep the daemon's ownership when root edits the file; a
			// failure (not root) leaves the editor as owner.
			_ = tmp.Chown(int(sys.Uid), int(sys.Gid))
		}
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("usersfile: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
