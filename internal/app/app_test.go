package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/fsstore"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/kmstest"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/usersfile"
)

// setup is a test configuration under a temporary directory with its
// keyring created, and a logger whose output the test can read.
func setup(t *testing.T) (*config.Config, *testkit.SyncBuffer, *slog.Logger) {
	t.Helper()
	dir := t.TempDir()
	c := testkit.Config(t, dir)
	testkit.WriteConfig(t, filepath.Join(dir, "mailvaultd.yaml"), c)
	if err := sealer.InitKeyring(c.Keys.Local.Keyring); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	return c, logs, slog.New(slog.NewTextHandler(logs, nil))
}

// useKMS switches c to the AWS KMS test double.
func useKMS(t *testing.T, c *config.Config) *kmstest.Server {
	t.Helper()
	kms := kmstest.Start(t)
	kms.SetEnv(t)
	kms.CreateAlias("alias/mailvault", kms.CreateKey())
	c.Keys.Provider = "awskms"
	c.Keys.AWSKMS.KeyID = "alias/mailvault"
	c.Keys.AWSKMS.Region = kmstest.Region
	c.Keys.AWSKMS.Endpoint = kms.URL
	return kms
}

// fingerprint is a's keyed hash of a fixed envelope, which shows which index
// key a's Vault holds.
func fingerprint(a *App) []byte {
	return a.Vault().Fingerprint(archive.Envelope{From: "a@example.test", To: []string{"b@example.test"}}).Sum(nil)
}

// vaultWithKeyringIndexKey is a Vault keyed with the keyring file's index
// key, to compare hashes with.
func vaultWithKeyringIndexKey(t *testing.T, c *config.Config) *archive.Vault {
	t.Helper()
	kr, err := sealer.LoadKeyring(c.Keys.Local.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return archive.NewVault(st, kr.IndexKey())
}

// TestOpenUnderEitherProvider: the key provider is the configured one, and
// the Vault hashes with the keyring file's index key under both: under
// awskms it is read alone, without a local key provider.
func TestOpenUnderEitherProvider(t *testing.T) {
	for _, provider := range []string{"local", "awskms"} {
		t.Run(provider, func(t *testing.T) {
			c, _, log := setup(t)
			if provider == "awskms" {
				useKMS(t, c)
			}
			a, err := Open(context.Background(), c, log)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if got := a.Keys().Name(); got != provider {
				t.Errorf("key provider %q, want %q", got, provider)
			}
			if (a.local != nil) != (provider == "local") {
				t.Errorf("a local keyring provider is open under %s: %v", provider, a.local != nil)
			}
			want := vaultWithKeyringIndexKey(t, c).Fingerprint(archive.Envelope{From: "a@example.test", To: []string{"b@example.test"}}).Sum(nil)
			if !bytes.Equal(fingerprint(a), want) {
				t.Error("the Vault does not hash with the keyring's index key")
			}
		})
	}
}

func TestOpenErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, c *config.Config)
		key    string
		reason string
	}{
		{"no keyring (local)", func(t *testing.T, c *config.Config) { os.Remove(c.Keys.Local.Keyring) },
			"keys.local.keyring", "create one with: mailvaultd keys init -config "},
		{"no keyring (awskms)", func(t *testing.T, c *config.Config) { useKMS(t, c); os.Remove(c.Keys.Local.Keyring) },
			"keys.local.keyring", "create one with: mailvaultd keys init -config "},
		{"keyring readable by others", func(t *testing.T, c *config.Config) { os.Chmod(c.Keys.Local.Keyring, 0o644) },
			"keys.local.keyring", "chmod 600"},
		{"archive directory is a file", func(t *testing.T, c *config.Config) { os.WriteFile(c.Archive.FS.Dir, nil, 0o600) },
			"archive.fs.dir", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, log := setup(t)
			tc.change(t, c)
			a, err := Open(context.Background(), c, log)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) {
				if a != nil {
					a.Close()
				}
				t.Fatalf("Open: %v; want a configuration error on %s saying %q", err, tc.key, tc.reason)
			}
			if err := CheckKeys(c); tc.key == "keys.local.keyring" && (err == nil || !strings.Contains(err.Error(), tc.reason)) {
				t.Errorf("CheckKeys: %v, want it to say %q", err, tc.reason)
			}
		})
	}
}

func TestCloseClearsTheIndexKey(t *testing.T) {
	c, _, log := setup(t)
	a, err := Open(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	before := fingerprint(a)
	a.Close()
	if bytes.Equal(fingerprint(a), before) {
		t.Fatal("after Close the Vault still hashes with the index key")
	}
}

// TestReadyzPingsOnce: one /readyz probe asks the key service once (it asked
// twice when both the handler and the wiring pinged).
func TestReadyzPingsOnce(t *testing.T) {
	c, _, log := setup(t)
	kms := useKMS(t, c)
	a, err := OpenDaemon(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := a.HTTPServer().Handler
	for probe := 1; probe <= 3; probe++ {
		before := kms.Calls("DescribeKey")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("probe %d: %d %s", probe, rec.Code, rec.Body)
		}
		if n := kms.Calls("DescribeKey") - before; n != 1 {
			t.Errorf("probe %d asked KMS %d times, want once", probe, n)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "go_goroutines") {
		t.Errorf("/metrics beside the API: %d", rec.Code)
	}
}

// TestReloadIsOnePath: one Reload re-reads the keyring (after a rotation)
// and the users file, and keeps what fails to load.
func TestReloadIsOnePath(t *testing.T) {
	c, logs, log := setup(t)
	a, err := OpenDaemon(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	keyID := func() string {
		t.Helper()
		dk, err := a.Keys().GenerateDataKey(ctx, sealer.ArchiveContext("x"))
		if err != nil {
			t.Fatal(err)
		}
		return dk.KeyID
	}
	token, err := usersfile.Add(c.Retrieval.UsersFile, "carol", access.RoleAuditor, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.RotateKeyring(c.Keys.Local.Keyring); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.users.Authenticate(access.HashToken(token)); ok || keyID() != "local:1" {
		t.Fatal("the users file or keyring changed before Reload")
	}
	a.Reload()
	if _, ok := a.users.Authenticate(access.HashToken(token)); !ok {
		t.Error("after Reload the new user's token is refused")
	}
	if got := keyID(); got != "local:2" {
		t.Errorf("after Reload new data keys use %s, want local:2", got)
	}
	for _, line := range []string{"reload: keyring reloaded", "reload: users file reloaded"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("the log has no %q:\n%s", line, logs)
		}
	}

	os.WriteFile(c.Keys.Local.Keyring, []byte("{}"), 0o600)
	os.WriteFile(c.Retrieval.UsersFile, []byte("users: [[["), 0o600)
	a.Reload()
	if _, ok := a.users.Authenticate(access.HashToken(token)); !ok || keyID() != "local:2" {
		t.Error("a Reload of broken files did not keep the loaded ones")
	}
	for _, line := range []string{"reload: keyring kept as it was", "reload: users file kept as it was"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("the log has no %q:\n%s", line, logs)
		}
	}
}

func TestLegalHoldsNeedS3(t *testing.T) {
	c, _, log := setup(t)
	if err := LegalHoldsConfigured(c); !errors.Is(err, ErrNoLegalHolds) {
		t.Errorf("LegalHoldsConfigured(fs) = %v", err)
	}
	a, err := Open(context.Background(), c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if h, err := a.LegalHolds(); !errors.Is(err, ErrNoLegalHolds) || h != nil {
		t.Errorf("LegalHolds on fs: %v, %v; want ErrNoLegalHolds", h, err)
	}
}

// TestLegalHoldsOnS3 holds and releases both objects of a message in a real
// MinIO bucket with Object Lock.
func TestLegalHoldsOnS3(t *testing.T) {
	c, _, log := setup(t)
	minio := miniotest.Start(t)
	minio.SetEnv(t)
	minio.NewBucket(t, "archive", true)
	c.Archive.Backend = "s3"
	c.Archive.S3.Bucket = "archive"
	c.Archive.S3.Region = miniotest.Region
	c.Archive.S3.Endpoint = minio.Endpoint
	c.Archive.S3.PathStyle = true
	if err := LegalHoldsConfigured(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := OpenDaemon(ctx, c, log) // checks the bucket
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	holds, err := a.LegalHolds()
	if err != nil {
		t.Fatal(err)
	}

	at := time.Now()
	id := archive.NewID(at)
	d, err := a.Vault().Begin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d.Write([]byte("sealed bytes stand-in"))
	env := archive.Envelope{From: "a@example.test", To: []string{"b@example.test"}}
	if _, _, err := d.Commit(ctx, archive.Record{Envelope: env, ReceivedAt: at,
		Meta: map[string]string{"mv-version": "1"}, Manifest: []byte("manifest"), Fingerprint: a.Vault().Fingerprint(env).Sum(nil)}); err != nil {
		t.Fatal(err)
	}

	status := func(key string) string {
		out, err := minio.Client().GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: aws.String("archive"), Key: aws.String(key)})
		if err != nil {
			return err.Error()
		}
		return string(out.LegalHold.Status)
	}
	for _, on := range []bool{true, false} {
		if err := holds.SetLegalHold(ctx, id, on); err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: "ON", false: "OFF"}[on]
		for _, key := range archive.MessageKeys(id) {
			if got := status(key); got != want {
				t.Errorf("%s: legal hold %s, want %s", key, got, want)
			}
		}
	}
	for _, missing := range []string{archive.NewID(at), "not-an-id"} {
		if err := holds.SetLegalHold(ctx, missing, true); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("SetLegalHold(%q): %v, want ErrNotFound", missing, err)
		}
	}
}
