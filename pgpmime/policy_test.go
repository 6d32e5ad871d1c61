package pgpmime

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{
		"off": PolicyOff, "": PolicyOff, " Opportunistic ": PolicyOpportunistic, "REQUIRED": PolicyRequired,
	} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"on", "always", "require", "true"} {
		if _, err := ParsePolicy(in); err == nil {
			t.Errorf("ParsePolicy(%q): no error", in)
		}
	}
}

// TestPlanMixedRecipients: the same mixed envelope under each policy.
func TestPlanMixedRecipients(t *testing.T) {
	ks := testKeys(t)
	gk := testGPGKey(t)
	dir := t.TempDir()
	writeKeyDir(t, dir, ks.alice, ks.bob, ks.expired, ks.revoked, ks.signOnly, ks.subExpired)
	if err := os.WriteFile(filepath.Join(dir, "gina.asc"), gk.pub, 0o644); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(dir, map[string]string{"alice.alias@example.org": ks.alice.fp}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rcpts := []string{
		"alice@example.org",
		"<Gina@Example.org>",
		"dave@example.org", // no key
		"ed@example.org",   // expired key
		"bob@example.org",
		"rita@example.org", // revoked key
		"alice.alias@example.org",
		"sid@example.org", // sign-only key
		"sue@example.org", // encryption subkey expired
	}
	withKey := []string{"alice@example.org", "<Gina@Example.org>", "bob@example.org", "alice.alias@example.org"}
	without := []string{"dave@example.org", "ed@example.org", "rita@example.org", "sid@example.org", "sue@example.org"}
	wantKeys := []string{ks.alice.fp, gk.fpr, ks.bob.fp} // alice once, though two addresses share her key

	cases := []struct {
		policy                    Policy
		encrypted, plain, refused []string
		keys                      []string
	}{
		{PolicyOff, nil, rcpts, nil, nil},
		{PolicyOpportunistic, withKey, without, nil, wantKeys},
		{PolicyRequired, withKey, nil, without, wantKeys},
		{Policy("bogus"), withKey, nil, without, wantKeys}, // fails closed
		{Policy(""), withKey, nil, without, wantKeys},      // fails closed
	}
	for _, c := range cases {
		t.Run(string(c.policy), func(t *testing.T) {
			enc, encR, plain, refused := Plan(rcpts, kr, c.policy)
			var fps []string
			for _, r := range encR {
				fps = append(fps, r.Fingerprint())
			}
			if !slices.Equal(enc, c.encrypted) || !slices.Equal(plain, c.plain) || !slices.Equal(refused, c.refused) || !slices.Equal(fps, c.keys) {
				t.Errorf("Plan =\n encrypted %q\n keys %q\n plain %q\n refused %q\nwant\n encrypted %q\n keys %q\n plain %q\n refused %q",
					enc, fps, plain, refused, c.encrypted, c.keys, c.plain, c.refused)
			}
			if n := len(enc) + len(plain) + len(refused); n != len(rcpts) {
				t.Errorf("%d recipients planned, want %d: none may be dropped", n, len(rcpts))
			}
		})
	}
	t.Run("nil keyring", func(t *testing.T) {
		enc, _, plain, refused := Plan(rcpts, nil, PolicyRequired)
		if len(enc) != 0 || len(plain) != 0 || len(refused) != len(rcpts) {
			t.Errorf("required without keys: %q %q %q", enc, plain, refused)
		}
		enc, _, plain, _ = Plan(rcpts, nil, PolicyOpportunistic)
		if len(enc) != 0 || len(plain) != len(rcpts) {
			t.Errorf("opportunistic without keys: %q %q", enc, plain)
		}
	})
}
