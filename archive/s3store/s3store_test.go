package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/storetest"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

// # Harness

// startMinIO starts a MinIO and points the SDK's default credential chain
// (the environment) at it, as production does with its own credentials.
func startMinIO(t *testing.T, cfg miniotest.Config) *miniotest.Server {
	t.Helper()
	srv := miniotest.StartWith(t, cfg)
	srv.SetEnv(t)
	return srv
}

var bucketSeq atomic.Int64

func newBucket(t testing.TB, srv *miniotest.Server, lock bool) string {
	t.Helper()
	name := fmt.Sprintf("mv-%d-%x", bucketSeq.Add(1), randBytes(t, 3))
	srv.NewBucket(t, name, lock)
	return name
}

func newStore(t testing.TB, srv *miniotest.Server, o Options) (*Store, *testkit.SyncBuffer) {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	o.Endpoint = srv.Endpoint
	o.Region = miniotest.Region
	o.PathStyle = true
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t testing.TB, s archive.Store, key string, data []byte, meta map[string]string, ifAbsent bool) error {
	t.Helper()
	ctx := ctxT(t)
	w, err := s.Create(ctx, key)
	if err != nil {
		return err
	}
	// Uneven pieces, as a sealed stream arrives.
	for len(data) > 0 {
		n := min(len(data), 100_003)
		if _, err := w.Write(data[:n]); err != nil {
			w.Abort()
			return err
		}
		data = data[n:]
	}
	return w.Commit(ctx, meta, ifAbsent)
}

func read(t testing.TB, s archive.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, err := s.Get(ctxT(t), key, off, n)
	if err != nil {
		t.Fatalf("get %s [%d,%+d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// leftovers lists what a writer may leave behind: open multipart uploads and
// staging objects (any version).
func leftovers(t testing.TB, srv *miniotest.Server, bucket string) []string {
	t.Helper()
	ctx := ctxT(t)
	c := srv.Client()
	var out []string
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups.Uploads {
		out = append(out, "upload "+aws.ToString(u.Key))
	}
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Versions {
		if strings.Contains(aws.ToString(v.Key), stagingDir) {
			out = append(out, "staging "+aws.ToString(v.Key)+" "+aws.ToString(v.VersionId))
		}
	}
	return out
}

// # Conformance

func TestConformance(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	t.Run("bucket", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) archive.Store {
			s, _ := newStore(t, srv, Options{Bucket: newBucket(t, srv, false), PartSize: MinPartSize})
			return s
		})
	})
	// A prefix shares a bucket with other data and must stay inside it.
	shared := newBucket(t, srv, false)
	if err := write(t, mustStore(t, srv, Options{Bucket: shared}), "a/outside", []byte("x"), nil, false); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	t.Run("prefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) archive.Store {
			s, _ := newStore(t, srv, Options{Bucket: shared, Prefix: fmt.Sprintf("tenant-%d/", n.Add(1)), PartSize: MinPartSize})
			return s
		})
	})
	if l := leftovers(t, srv, shared); len(l) != 0 {
		t.Errorf("left behind: %q", l)
	}
}

// TestMinIOObjectPrefixListing pins the MinIO behaviour the conformance
// skips stand for: with an object "a", "a/b" is stored and readable but
// missing from every listing.
func TestMinIOObjectPrefixListing(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	s, _ := newStore(t, srv, Options{Bucket: newBucket(t, srv, false)})
	for _, k := range []string{"a", "a/b"} {
		if err := write(t, s, k, []byte(k), nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(t, s, "a/b", 0, -1); string(got) != "a/b" {
		t.Fatalf("get a/b = %q", got)
	}
	var keys []string
	for _, prefix := range []string{"", "a/"} {
		page, err := s.List(ctxT(t), prefix, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			keys = append(keys, o.Key)
		}
	}
	if slices.Contains(keys, "a/b") {
		t.Logf("this MinIO lists a/b beside a: the conformance skips can go (listed %q)", keys)
	} else {
		t.Logf("MinIO hides a/b beside the object a from listings (listed %q)", keys)
	}
}

// TestListOrderWithoutObjectPrefixes is the conformance suite's ordering
// case without the object/prefix pairs MinIO cannot list: byte order across
// '-' < '.' < '/' < digits < '_' < letters, under prefixes, in every page
// size.
func TestListOrderWithoutObjectPrefixes(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	s, _ := newStore(t, srv, Options{Bucket: newBucket(t, srv, false), Prefix: "p/"})
	keys := []string{
		"a-b", "a.b", "a/b-c", "a/b/c-", "a/b/c/d", "a/b0", "a/c", "a0", "a_", "aa", "ab/c", "b",
		"idx/0f/1-x", "idx/0f/2-x", "idx/0f0/1-x", "idx/1/1-x", "z.9/y_8/x-7",
	}
	for i := range keys {
		k := keys[(i*7)%len(keys)]
		if err := write(t, s, k, []byte(k), nil, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"", "a", "a/", "a/b", "a/b/", "a/b/c", "idx/0f", "idx/0f/", "zz"} {
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		for _, limit := range []int{1, 2, 3, 1000} {
			var got []string
			after := ""
			for {
				page, err := s.List(ctxT(t), prefix, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page {
					got = append(got, o.Key)
				}
				if len(page) < limit {
					break
				}
				after = page[len(page)-1].Key
			}
			if !slices.Equal(got, want) {
				t.Errorf("list %q limit %d:\n got %q\nwant %q", prefix, limit, got, want)
			}
		}
	}
}

func mustStore(t testing.TB, srv *miniotest.Server, o Options) *Store {
	s, _ := newStore(t, srv, o)
	return s
}

// # Multipart

func TestMultipart(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, false)
	s, logs := newStore(t, srv, Options{Bucket: bucket, Prefix: "arch/", PartSize: MinPartSize})
	const size = 20_000_000 // four parts of 5 MiB and a short fifth
	data := randBytes(t, size)
	meta := map[string]string{
		"mv-version":        "1",
		"mv-provider":       "awskms",
		"mv-key-id":         "arn:aws:kms:us-east-1:111122223333:key/0f0e",
		"mv-wrapped-key":    base64.StdEncoding.EncodeToString(randBytes(t, 184)),
		"mv-context":        `{"mailvaultd:archive-id":"0abc"}`,
		"mv-plaintext-size": "19998000",
	}
	if err := write(t, s, "msg/big", data, meta, true); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s, "msg/big", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("whole object differs")
	}
	for _, r := range [][2]int64{
		{0, 1}, {MinPartSize - 1, 2}, {MinPartSize - 100, 200}, {2*MinPartSize - 7, MinPartSize + 14},
		{size - 10, -1}, {size - 10, 100}, {12345, 64 * 1024}, {size, -1},
	} {
		want := data[min(r[0], size):]
		if r[1] >= 0 && r[1] < int64(len(want)) {
			want = want[:r[1]]
		}
		if got := read(t, s, "msg/big", r[0], r[1]); !bytes.Equal(got, want) {
			t.Errorf("range [%d,%+d) differs", r[0], r[1])
		}
	}

	// A standard S3 client, separate from the store, sees the metadata (what
	// `aws s3api head-object` prints) and the SHA-256 of the whole object.
	head, err := srv.Client().HeadObject(ctxT(t), &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("arch/msg/big"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(head.Metadata, meta) {
		t.Errorf("plain HeadObject metadata = %v, want %v", head.Metadata, meta)
	}
	sum := sha256.Sum256(data)
	if got := aws.ToString(head.ChecksumSHA256); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Errorf("stored SHA-256 %q is not the data's", got)
	}
	if aws.ToInt64(head.ContentLength) != size {
		t.Errorf("size %d", aws.ToInt64(head.ContentLength))
	}
	if l := leftovers(t, srv, bucket); len(l) != 0 {
		t.Errorf("left behind: %q", l)
	}
	if logs.String() != "" {
		t.Errorf("warnings: %s", logs)
	}

	// Exactly one part, and one byte more: the two paths meet.
	for _, n := range []int{MinPartSize, MinPartSize + 1, 2 * MinPartSize, 2*MinPartSize + 1} {
		d := randBytes(t, n)
		key := fmt.Sprintf("edge/%d", n)
		if err := write(t, s, key, d, map[string]string{"n": fmt.Sprint(n)}, false); err != nil {
			t.Fatal(err)
		}
		if got := read(t, s, key, 0, -1); !bytes.Equal(got, d) {
			t.Errorf("%d bytes: differ", n)
		}
		info, err := s.Head(ctxT(t), key)
		if err != nil || info.Metadata["n"] != fmt.Sprint(n) || info.Size != int64(n) {
			t.Errorf("%d bytes: head %+v, %v", n, info, err)
		}
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, false)
	s, _ := newStore(t, srv, Options{Bucket: bucket, PartSize: MinPartSize})
	ctx := ctxT(t)

	t.Run("abort", func(t *testing.T) {
		w, err := s.Create(ctx, "aborted")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randBytes(t, 3*MinPartSize+5)); err != nil {
			t.Fatal(err)
		}
		if l := leftovers(t, srv, bucket); len(l) != 1 {
			t.Fatalf("during the write: %q, want one upload", l)
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if l := leftovers(t, srv, bucket); len(l) != 0 {
			t.Fatalf("after Abort: %q", l)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("second Abort: %v", err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("Write after Abort succeeded")
		}
	})

	t.Run("bad metadata at commit", func(t *testing.T) {
		w, _ := s.Create(ctx, "badmeta")
		w.Write(randBytes(t, MinPartSize+1))
		err := w.Commit(ctx, map[string]string{"Upper": "x"}, false)
		if !errors.Is(err, archive.ErrInvalidMetadata) {
			t.Fatalf("err = %v", err)
		}
		if l := leftovers(t, srv, bucket); len(l) != 0 {
			t.Fatalf("left behind: %q", l)
		}
	})

	t.Run("cancelled while writing", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		w, _ := s.Create(wctx, "cancelled")
		w.Write(randBytes(t, MinPartSize+1)) // part 1 is on its way
		cancel()
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = w.Write(randBytes(t, MinPartSize))
		}
		if err == nil {
			err = w.Commit(wctx, nil, false)
		}
		if err == nil {
			t.Fatal("no error after the writer's context was cancelled")
		}
		w.Abort()
		if l := leftovers(t, srv, bucket); len(l) != 0 {
			t.Fatalf("left behind: %q", l)
		}
	})

	t.Run("exists at commit", func(t *testing.T) {
		first := randBytes(t, MinPartSize+10)
		if err := write(t, s, "taken", first, map[string]string{"w": "1"}, true); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{10, MinPartSize + 10, 3 * MinPartSize} {
			err := write(t, s, "taken", randBytes(t, n), map[string]string{"w": "2"}, true)
			if !errors.Is(err, archive.ErrExists) {
				t.Fatalf("%d bytes: err = %v, want ErrExists", n, err)
			}
		}
		if got := read(t, s, "taken", 0, -1); !bytes.Equal(got, first) {
			t.Fatal("the first object was replaced")
		}
		if l := leftovers(t, srv, bucket); len(l) != 0 {
			t.Fatalf("left behind: %q", l)
		}
	})

	keys, err := s.List(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Key != "taken" {
		t.Fatalf("bucket holds %v", keys)
	}
}

// TestBoundedMemory writes 64 MiB through 5 MiB parts: the writer allocates
// about two part buffers, not the object.
func TestBoundedMemory(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, false)
	s, _ := newStore(t, srv, Options{Bucket: bucket, PartSize: MinPartSize})
	ctx := ctxT(t)
	chunk := randBytes(t, 64*1024)
	const total = 64 << 20

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w, err := s.Create(ctx, "stream")
	if err != nil {
		t.Fatal(err)
	}
	for written := 0; written < total; written += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB while writing %d MiB", allocated>>20, total>>20)
	if allocated > 4*MinPartSize {
		t.Fatalf("allocated %d bytes writing %d: not bounded by the part size", allocated, total)
	}
	info, err := s.Head(ctx, "stream")
	if err != nil || info.Size != total {
		t.Fatalf("head: %+v, %v", info, err)
	}
}

// TestCopyIfNoneMatch records what the server does with If-None-Match on
// CopyObject, which the multipart commit relies on where it is honoured.
func TestCopyIfNoneMatch(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, false)
	c := srv.Client()
	ctx := ctxT(t)
	for _, k := range []string{"src", "dst"} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("dst"), CopySource: aws.String(bucket + "/src"), IfNoneMatch: aws.String("*")})
	if err == nil {
		t.Log("this MinIO ignores If-None-Match on CopyObject (the copy replaced an existing object): " +
			"the store's HeadObject check before the copy is what keeps ifAbsent, with the race documented in docs/S3.md")
	} else {
		t.Logf("this server honours If-None-Match on CopyObject: %v", err)
	}
}

// # Failures

func TestServerStoppedAndRestarted(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, false)
	s, logs := newStore(t, srv, Options{Bucket: bucket, PartSize: MinPartSize})
	if err := write(t, s, "before", []byte("kept"), map[string]string{"a": "b"}, false); err != nil {
		t.Fatal(err)
	}

	// A large write is under way (part 1 sent) when the server goes away.
	ctx := ctxT(t)
	w, err := s.Create(ctx, "interrupted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randBytes(t, MinPartSize+1)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	const bound = 30 * time.Second
	_, err = w.Write(randBytes(t, 2*MinPartSize))
	if err == nil {
		err = w.Commit(ctx, nil, false)
	}
	if err == nil {
		t.Fatal("the interrupted write succeeded")
	}
	t.Logf("interrupted write: %v", err)
	w.Abort()
	// Every operation fails, each within the bound: connection refused,
	// retried by the SDK with backoff, then reported.
	const opBound = 10 * time.Second
	ops := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"ping", s.Ping},
		{"put", func(ctx context.Context) error { return write(t, s, "during", []byte("x"), nil, false) }},
		{"head", func(ctx context.Context) error { _, err := s.Head(ctx, "before"); return err }},
		{"get", func(ctx context.Context) error { _, err := s.Get(ctx, "before", 0, -1); return err }},
		{"list", func(ctx context.Context) error { _, err := s.List(ctx, "", "", 10); return err }},
		{"delete", func(ctx context.Context) error { return s.Delete(ctx, "before") }},
	}
	for _, op := range ops {
		opCtx, cancel := context.WithTimeout(context.Background(), bound)
		start := time.Now()
		err := op.fn(opCtx)
		took := time.Since(start)
		cancel()
		switch {
		case err == nil:
			t.Errorf("%s succeeded with the server stopped", op.name)
		case errors.Is(err, archive.ErrNotFound):
			t.Errorf("%s: a stopped server reads as not found: %v", op.name, err)
		case took > opBound:
			t.Errorf("%s: failed only after %v", op.name, took)
		default:
			t.Logf("%s failed after %v", op.name, took.Round(time.Millisecond))
		}
	}
	if !strings.Contains(logs.String(), "abort multipart upload failed") {
		t.Errorf("the abort that could not reach the server was not reported:\n%s", logs)
	}

	srv.Restart()
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if got := read(t, s, "before", 0, -1); string(got) != "kept" {
		t.Fatalf("after restart: %q", got)
	}
	data := randBytes(t, 2*MinPartSize+3)
	if err := write(t, s, "after", data, nil, true); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	if got := read(t, s, "after", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("object written after restart differs")
	}
	// The upload whose abort failed is still there: that is what the
	// AbortIncompleteMultipartUpload lifecycle rule in docs/S3.md is for.
	t.Logf("left for the lifecycle rule: %q", leftovers(t, srv, bucket))
}

// # Retention

func TestObjectLockCompliance(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, true)
	s, logs := newStore(t, srv, Options{Bucket: bucket, PartSize: MinPartSize, ObjectLockMode: "COMPLIANCE", ObjectLockDays: 1})
	ctx := ctxT(t)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	c := srv.Client()
	for _, size := range []int{1000, 2*MinPartSize + 1} {
		key := fmt.Sprintf("msg/%d", size)
		data := randBytes(t, size)
		if err := write(t, s, key, data, map[string]string{"mv-version": "1"}, true); err != nil {
			t.Fatal(err)
		}
		mode, until, err := s.Retention(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Now().Add(24 * time.Hour); mode != "COMPLIANCE" || until.Before(want.Add(-time.Minute)) || until.After(want.Add(time.Minute)) {
			t.Fatalf("%s: retention %s until %v", key, mode, until)
		}
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		version := head.VersionId

		// The retained version cannot be deleted, by anyone.
		_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key, VersionId: version})
		if err == nil {
			t.Fatalf("%s: deleting a COMPLIANCE-retained version succeeded", key)
		}
		_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key, VersionId: version, BypassGovernanceRetention: aws.Bool(true)})
		if err == nil {
			t.Fatalf("%s: governance bypass deleted a COMPLIANCE-retained version", key)
		}
		// Nor overwritten: the store refuses, and a PUT by another client
		// only stacks a new version on top; the retained one stays intact.
		if err := write(t, s, key, []byte("overwrite"), nil, true); !errors.Is(err, archive.ErrExists) {
			t.Fatalf("%s: store overwrite: %v", key, err)
		}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("overwrite")}); err != nil {
			t.Fatal(err)
		}
		// A Store.Delete (a delete marker) does not remove it either.
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		old, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, VersionId: version})
		if err != nil {
			t.Fatalf("%s: retained version gone: %v", key, err)
		}
		got, _ := io.ReadAll(old.Body)
		old.Body.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: retained version changed", key)
		}
	}
	// Multipart staging objects were deleted by version: nothing hidden.
	if l := leftovers(t, srv, bucket); len(l) != 0 {
		t.Errorf("left behind: %q", l)
	}
	if logs.String() != "" {
		t.Errorf("warnings: %s", logs)
	}
}

func TestObjectLockGovernance(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, true)
	s, _ := newStore(t, srv, Options{Bucket: bucket, ObjectLockMode: "GOVERNANCE", ObjectLockDays: 30})
	ctx := ctxT(t)
	if err := write(t, s, "g", []byte("x"), nil, false); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("g")})
	if err != nil || head.ObjectLockMode != types.ObjectLockModeGovernance {
		t.Fatalf("head: %v, mode %q", err, head.ObjectLockMode)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("g"), VersionId: head.VersionId}); err == nil {
		t.Fatal("deleting a GOVERNANCE-retained version without bypass succeeded")
	}
	// GOVERNANCE yields to a principal with s3:BypassGovernanceRetention.
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("g"), VersionId: head.VersionId, BypassGovernanceRetention: aws.Bool(true)}); err != nil {
		t.Fatalf("governance bypass: %v", err)
	}
}

func TestLegalHold(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, true)
	s, _ := newStore(t, srv, Options{Bucket: bucket}) // no retention: only the hold protects
	ctx := ctxT(t)
	if err := write(t, s, "held", []byte("evidence"), nil, false); err != nil {
		t.Fatal(err)
	}
	if on, err := s.LegalHold(ctx, "held"); err != nil || on {
		t.Fatalf("initial hold: %v, %v", on, err)
	}
	if err := s.SetLegalHold(ctx, "held", true); err != nil {
		t.Fatal(err)
	}
	if on, err := s.LegalHold(ctx, "held"); err != nil || !on {
		t.Fatalf("hold after on: %v, %v", on, err)
	}
	c := srv.Client()
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("held")})
	if err != nil || head.ObjectLockLegalHoldStatus != types.ObjectLockLegalHoldStatusOn {
		t.Fatalf("plain head: %v, hold %q", err, head.ObjectLockLegalHoldStatus)
	}
	del := &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("held"), VersionId: head.VersionId, BypassGovernanceRetention: aws.Bool(true)}
	if _, err := c.DeleteObject(ctx, del); err == nil {
		t.Fatal("deleted a version under legal hold")
	}
	if err := s.SetLegalHold(ctx, "held", false); err != nil {
		t.Fatal(err)
	}
	if on, err := s.LegalHold(ctx, "held"); err != nil || on {
		t.Fatalf("hold after off: %v, %v", on, err)
	}
	if _, err := c.DeleteObject(ctx, del); err != nil {
		t.Fatalf("delete after the hold was lifted: %v", err)
	}
	if err := s.SetLegalHold(ctx, "missing", true); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("hold on a missing key: %v", err)
	}
}

func TestCheckWithoutObjectLock(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{})
	bucket := newBucket(t, srv, false)
	s, _ := newStore(t, srv, Options{Bucket: bucket, ObjectLockMode: "COMPLIANCE", ObjectLockDays: 1})
	if err := s.Check(ctxT(t)); err == nil {
		t.Fatal("Check accepted retention on a bucket without Object Lock")
	}
	missing, _ := newStore(t, srv, Options{Bucket: "no-such-bucket"})
	if err := missing.Ping(ctxT(t)); err == nil {
		t.Fatal("Ping of a missing bucket succeeded")
	}
	// A missing bucket is not a missing object, also on HEAD (no body).
	if _, err := missing.Head(ctxT(t), "k"); err == nil || errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("head in a missing bucket: %v", err)
	}
	if _, err := missing.Get(ctxT(t), "k", 0, -1); err == nil || errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("get in a missing bucket: %v", err)
	}
}

// # Server-side encryption

func TestSSE(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{TLS: true, KMS: true})
	dir := t.TempDir()
	rawKey := randBytes(t, 32)
	rawFile := filepath.Join(dir, "raw.key")
	b64File := filepath.Join(dir, "b64.key")
	os.WriteFile(rawFile, rawKey, 0o600)
	os.WriteFile(b64File, []byte(base64.StdEncoding.EncodeToString(rawKey)+"\n"), 0o600)
	key64 := base64.StdEncoding.EncodeToString(rawKey)

	for _, tc := range []struct {
		name string
		o    Options
		want types.ServerSideEncryption
	}{
		{"sse-s3", Options{SSE: "sse-s3"}, types.ServerSideEncryptionAes256},
		{"sse-kms", Options{SSE: "sse-kms", SSEKMSKeyID: miniotest.KMSKeyName}, types.ServerSideEncryptionAwsKms},
		{"sse-c raw key file", Options{SSE: "sse-c", SSECKeyFile: rawFile}, ""},
		{"sse-c base64 key file", Options{SSE: "sse-c", SSECKeyFile: b64File}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := newBucket(t, srv, false)
			tc.o.Bucket, tc.o.PartSize = bucket, MinPartSize
			s, logs := newStore(t, srv, tc.o)
			ctx := ctxT(t)
			small, large := randBytes(t, 1000), randBytes(t, 2*MinPartSize+99)
			meta := map[string]string{"mv-wrapped-key": "AAEC"}
			for key, data := range map[string][]byte{"small": small, "large": large} {
				if err := write(t, s, key, data, meta, true); err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				if got := read(t, s, key, 0, -1); !bytes.Equal(got, data) {
					t.Fatalf("%s differs", key)
				}
				if got := read(t, s, key, 100, 500); !bytes.Equal(got, data[100:600]) {
					t.Fatalf("%s: range differs", key)
				}
				info, err := s.Head(ctx, key)
				if err != nil || !maps.Equal(info.Metadata, meta) {
					t.Fatalf("%s: head %v, %v", key, info.Metadata, err)
				}
				plain := &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(key)}
				head, err := srv.Client().HeadObject(ctx, plain)
				if tc.o.SSE == "sse-c" {
					// Without the customer key nobody can read it, not even
					// the bucket owner.
					if err == nil {
						t.Fatalf("%s: HEAD without the SSE-C key succeeded", key)
					}
					sum := md5.Sum(rawKey)
					plain.SSECustomerAlgorithm, plain.SSECustomerKey = aws.String("AES256"), aws.String(key64)
					plain.SSECustomerKeyMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
					head, err = srv.Client().HeadObject(ctx, plain)
					if err != nil || aws.ToString(head.SSECustomerAlgorithm) != "AES256" {
						t.Fatalf("%s: HEAD with the key: %v", key, err)
					}
					continue
				}
				if err != nil || head.ServerSideEncryption != tc.want {
					t.Fatalf("%s: server-side encryption %q, want %q (%v)", key, head.ServerSideEncryption, tc.want, err)
				}
			}
			if l := leftovers(t, srv, bucket); len(l) != 0 {
				t.Errorf("left behind: %q", l)
			}
			// The customer key never shows: not in logs, not when the
			// store is printed.
			for _, text := range []string{logs.String(), fmt.Sprintf("%v %+v %#v", s, s, s)} {
				if strings.Contains(text, key64) {
					t.Fatal("the SSE-C key leaked")
				}
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	srv := startMinIO(t, miniotest.Config{}) // plain HTTP
	keyFile := filepath.Join(t.TempDir(), "k")
	os.WriteFile(keyFile, randBytes(t, 32), 0o600)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, randBytes(t, 16), 0o600)
	for name, o := range map[string]Options{
		"no bucket":           {},
		"small parts":         {Bucket: "b", PartSize: 1 << 20},
		"huge parts":          {Bucket: "b", PartSize: 1 << 30},
		"bad sse":             {Bucket: "b", SSE: "aes"},
		"kms key without kms": {Bucket: "b", SSE: "sse-s3", SSEKMSKeyID: "k"},
		"sse-c without file":  {Bucket: "b", SSE: "sse-c"},
		"sse-c short key":     {Bucket: "b", SSE: "sse-c", SSECKeyFile: short},
		"sse-c over http":     {Bucket: "b", SSE: "sse-c", SSECKeyFile: keyFile, Endpoint: srv.Endpoint},
		"lock mode":           {Bucket: "b", ObjectLockMode: "compliance", ObjectLockDays: 1},
		"lock days":           {Bucket: "b", ObjectLockMode: "COMPLIANCE"},
		"days without mode":   {Bucket: "b", ObjectLockDays: 3},
		"bad endpoint":        {Bucket: "b", Endpoint: "minio:9000"},
		"absolute prefix":     {Bucket: "b", Prefix: "/x/"},
	} {
		if o.Region == "" {
			o.Region = "us-east-1"
		}
		_, err := New(context.Background(), o)
		if err == nil || !strings.HasPrefix(err.Error(), "archive/s3: ") {
			t.Errorf("%s: New = %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(randBytes(t, 1))[:0]+"BEGIN") {
			t.Errorf("%s: key material in %v", name, err)
		}
	}
	// Keys under the staging directory are reserved.
	s, _ := newStore(t, srv, Options{Bucket: newBucket(t, srv, false)})
	if _, err := s.Create(ctxT(t), stagingDir+"x"); err == nil {
		t.Error("Create in the staging directory succeeded")
	}
}
