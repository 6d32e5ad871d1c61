package retrieval

import (
	"testing"

	"github.com/mailvault/mailvaultd/access"
)

// TestSessionsPerUser is issue 10 item 10: one reader signing in 10,001
// times used to evict every other user's session (a table of 10,000, the
// oldest out). Now a user's sign-ins evict only that user's own oldest
// sessions.
func TestSessionsPerUser(t *testing.T) {
	s := newSessionStore()
	bob := &principal{name: "bob", role: access.RoleReader}
	alice := &principal{name: "alice", role: access.RoleReader}
	bobID, err := s.create(bob)
	if err != nil {
		t.Fatal(err)
	}
	var aliceIDs []string
	for range maxSessions + 1 {
		id, err := s.create(alice)
		if err != nil {
			t.Fatal(err)
		}
		aliceIDs = append(aliceIDs, id)
	}
	if s.lookup(bobID) == nil {
		t.Fatal("bob was signed out by alice's sign-ins")
	}
	live := 0
	for _, id := range aliceIDs {
		if s.lookup(id) != nil {
			live++
		}
	}
	if live != maxUserSessions {
		t.Errorf("alice has %d live sessions, want %d", live, maxUserSessions)
	}
	for _, id := range aliceIDs[len(aliceIDs)-maxUserSessions:] {
		if s.lookup(id) == nil {
			t.Fatal("one of alice's newest sessions is gone")
		}
	}
	if len(s.m) != maxUserSessions+1 {
		t.Errorf("%d sessions in the table, want %d", len(s.m), maxUserSessions+1)
	}
}
