package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// putObject stores key with a stand-in body in c's configured store.
func putObject(t *testing.T, c *config.Config, key string) {
	t.Helper()
	ctx := context.Background()
	st, err := openStore(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Write([]byte("stand-in"))
	if err := w.Commit(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
}

// TestInitKeyringRefusesAnArchiveWithMessages: a keyring is created only
// where the archive holds no message; the refusal names the keyring and
// the archive. Run on the fs store and on a real MinIO bucket.
func TestInitKeyringRefusesAnArchiveWithMessages(t *testing.T) {
	msgKey := archive.MessagePrefix + archive.NewID(time.Now())
	minio := miniotest.Start(t)
	for _, backend := range []string{"fs", "s3"} {
		for _, tc := range []struct {
			name    string
			objects []string
			refused bool
		}{
			{"empty", nil, false},
			{"index entries only", []string{"fp/0123", "all/0001-x"}, false},
			{"a message", []string{msgKey}, true},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				c := testkit.Config(t, dir)
				if backend == "s3" {
					minio.SetEnv(t)
					bucket := "b" + strings.ToLower(strings.NewReplacer(" ", "", "/", "-").Replace(tc.name))
					minio.NewBucket(t, bucket, false)
					c.Archive.Backend = "s3"
					c.Archive.S3.Bucket, c.Archive.S3.Region = bucket, miniotest.Region
					c.Archive.S3.Endpoint, c.Archive.S3.PathStyle = minio.Endpoint, true
				}
				for _, k := range tc.objects {
					putObject(t, c, k)
				}
				err := InitKeyring(context.Background(), c)
				_, statErr := os.Stat(c.Keys.Local.Keyring)
				if !tc.refused {
					if err != nil || statErr != nil {
						t.Fatalf("InitKeyring: %v; keyring: %v", err, statErr)
					}
					if err := InitKeyring(context.Background(), c); err == nil {
						t.Error("a second InitKeyring overwrote the keyring")
					}
					return
				}
				if !errors.Is(err, ErrArchiveHasMessages) || statErr == nil {
					t.Fatalf("InitKeyring: %v, keyring created: %v; want ErrArchiveHasMessages and no keyring", err, statErr == nil)
				}
				for _, want := range []string{c.Keys.Local.Keyring, archiveWhere(c), "Restore"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%q does not say %q", err, want)
					}
				}
			})
		}
	}
}

// TestInitKeyringLeavesAMissingArchiveAlone: checking an fs archive that
// does not exist yet does not create it.
func TestInitKeyringLeavesAMissingArchiveAlone(t *testing.T) {
	c := testkit.Config(t, t.TempDir())
	if err := InitKeyring(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Archive.FS.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("archive directory after InitKeyring: %v, want it still missing", err)
	}
}

// TestOpenDaemonWithAnUnusableAuditLog: an audit log that cannot be opened
// does not stop the daemon (mail is still archived); every read answers 503
// and the log says why.
func TestOpenDaemonWithAnUnusableAuditLog(t *testing.T) {
	c, logs, log := setup(t)
	if err := os.Mkdir(c.Retrieval.AuditLog, 0o700); err != nil {
		t.Fatal(err)
	}
	a, err := OpenDaemon(context.Background(), c, log)
	if err != nil {
		t.Fatalf("OpenDaemon: %v; want it to open with reads refused", err)
	}
	defer a.Close()
	if a.SMTPServer() == nil {
		t.Fatal("no SMTP server")
	}
	srv := httptest.NewServer(a.HTTPServer().Handler)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable && res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a read with the audit log unusable: %d", res.StatusCode)
	}
	if !strings.Contains(logs.String(), "audit log unusable") || !strings.Contains(logs.String(), filepath.Base(c.Retrieval.AuditLog)) {
		t.Errorf("the log does not say the audit log is unusable:\n%s", logs)
	}
}

// TestHTTPServerLimits: idle keep-alives are bounded and /metrics moves to
// its own server with retrieval.metrics_listen.
func TestHTTPServerLimits(t *testing.T) {
	for _, metrics := range []string{"", "127.0.0.1:1"} {
		c, _, log := setup(t)
		c.Retrieval.MetricsListen = metrics
		a, err := OpenDaemon(context.Background(), c, log)
		if err != nil {
			t.Fatal(err)
		}
		hs := a.HTTPServer()
		if hs.IdleTimeout <= 0 || hs.IdleTimeout > httpIdleTimeout {
			t.Errorf("idle timeout %v, want at most %v", hs.IdleTimeout, httpIdleTimeout)
		}
		rec := httptest.NewRecorder()
		hs.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		onAPI := rec.Code == 200 && strings.Contains(rec.Body.String(), "go_goroutines")
		ms := a.MetricsServer()
		if onAPI != (metrics == "") || (ms != nil) != (metrics != "") {
			t.Errorf("metrics_listen %q: /metrics on the API %v, own server %v", metrics, onAPI, ms != nil)
		}
		// The daemon's handler is retrieval's own: a malformed path is its
		// 400 (and an audit line), not an outer mux's redirect.
		for _, p := range []string{"//v1/messages", "/./v1/messages", "/v1/../v1/messages"} {
			rec := httptest.NewRecorder()
			hs.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "http://x"+p, nil))
			if rec.Code != 400 {
				t.Errorf("GET %s: %d, want 400", p, rec.Code)
			}
		}
		a.Close()
	}
}
