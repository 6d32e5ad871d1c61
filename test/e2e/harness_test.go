package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// stack is the whole pipeline: Postfix with mailvaultd as its content filter,
// MinIO as the archive.
type stack struct {
	dir    string
	pf     *postfix
	minio  *miniotest.Server
	bucket string
	mv     *daemon
	mail   *mailIndex
}

// newStack starts MinIO, Postfix and mailvaultd for t, with a Maildir for
// each of mailboxes, and tears everything down when t ends.
func newStack(t *testing.T, mailboxes []string) *stack {
	t.Helper()
	requireRoot(t)
	requireDebian(t, mailTools)
	s := &stack{dir: workDir(t), bucket: "mail-archive"}
	filterAddr := testkit.FreeAddr(t)
	s.pf = startPostfix(t, s.dir, postfixConfig{filter: filterAddr, mailboxes: mailboxes})
	s.mail = newMailIndex(s.pf)
	s.minio = miniotest.Start(t)
	s.minio.NewBucket(t, s.bucket, false)
	s.mv = newDaemon(t, s.dir, daemonConfig{listen: filterAddr, nextHop: s.pf.Reinject, s3: s.minio, bucket: s.bucket})
	keepArtifacts(t, s.dir)
	s.mv.Start()
	return s
}

// workDir makes a directory for one test that the postfix user and the
// virtual delivery uid can traverse (t.TempDir's are 0700), removed when the
// test ends unless MAILVAULTD_E2E_KEEP is set.
func workDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mailvaultd-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("MAILVAULTD_E2E_KEEP") != "" {
			t.Logf("e2e: kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// keepArtifacts copies the logs and configs of a failed test to
// test/e2e/artifacts/TESTNAME/ (git-ignored).
func keepArtifacts(t testing.TB, dir string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dest := filepath.Join(repoRoot(t), "test", "e2e", "artifacts", regexp.MustCompile(`[^A-Za-z0-9_.-]`).ReplaceAllString(t.Name(), "_"))
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return
		}
		for _, f := range []string{"log/maillog", "etc/main.cf", "etc/master.cf", "etc/vmailbox", "mailvaultd.log", "mailvaultd.yaml"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				os.WriteFile(filepath.Join(dest, filepath.Base(f)), b, 0o644)
			}
		}
		t.Logf("e2e: logs and configs of this run are in %s", dest)
	})
}

// listS3 lists the keys under prefix in bucket with the AWS SDK, as root.
func listS3(s *miniotest.Server, bucket, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var keys []string
	pages := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
