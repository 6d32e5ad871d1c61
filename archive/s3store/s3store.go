// Package s3store is the S3 backend of archive.Store: it keeps sealed objects
// in one bucket under an optional key prefix, through aws-sdk-go-v2 with the
// SDK's default credential chain. It works against AWS S3 and MinIO.
//
// s3store never sees plaintext and never decrypts: it moves the ciphertext and
// the object metadata the archive gives it. Optional S3 server-side
// encryption and Object Lock retention are applied on top, per Options.
//
// # Writing
//
// An ObjectWriter buffers up to PartSize bytes. A Commit that has no more
// than that sends one PutObject with the metadata, a SHA-256 checksum that S3
// verifies, and If-None-Match: * when the caller asks for ifAbsent.
//
// A larger object streams as a multipart upload to a staging key
// (<prefix>.mv-staging/<random>) while it is written, at most two parts in
// memory. The object's metadata (its plaintext size above all) is known only
// at Commit, but S3 fixes metadata when a multipart upload is created, so
// Commit completes the staging upload and then copies it server-side to its
// final key with the metadata (MetadataDirective REPLACE), a conditional
// If-None-Match when asked, retention and encryption settings, and deletes
// the staging object. Any failure aborts the upload or deletes the staging
// object. docs/S3.md explains the design and what it costs.
package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/mailvault/mailvaultd/archive"
)

// Options configure a Store. The zero value of every optional field means
// "off" or "default".
type Options struct {
	Bucket    string
	Prefix    string // prepended to every key as is (include a trailing "/" if you want one)
	Region    string // empty: the SDK's (AWS_REGION, shared config)
	Endpoint  string // empty: AWS; otherwise e.g. "https://minio.internal:9000"
	PathStyle bool   // path-style addressing (MinIO and most S3-compatible servers)

	// SSE is S3 server-side encryption on top of mailvaultd's own:
	// "" (none), "sse-s3", "sse-kms" or "sse-c".
	SSE         string
	SSEKMSKeyID string // sse-kms: the KMS key id or ARN; empty: the aws/s3 managed key
	SSECKeyFile string // sse-c: file holding the 256-bit key (32 raw bytes, or base64 of them)

	// ObjectLockMode ("", "GOVERNANCE" or "COMPLIANCE") and ObjectLockDays
	// give every committed object a retain-until date of now+days. The bucket
	// must have been created with Object Lock enabled.
	ObjectLockMode string
	ObjectLockDays int

	// PartSize is the multipart part size and the largest object written
	// with a single PutObject. Default 8 MiB; at least 5 MiB (S3's minimum).
	PartSize int64

	// Logger receives warnings about leftovers that could not be cleaned up
	// (nil: slog.Default()). It never receives key material.
	Logger *slog.Logger
}

// Limits.
const (
	DefaultPartSize = 8 << 20
	MinPartSize     = 5 << 20   // S3's minimum part size (all parts but the last)
	MaxPartSize     = 256 << 20 // bounds the memory of one writer (two parts)
	maxCopySize     = 5 << 30   // the largest object one CopyObject can copy (at most 1024 parts of 5 MiB or more: well within S3's 10000)
	maxKeyBytes     = archive.MaxKeyBytes
	defaultListPage = 1000 // a List with limit <= 0 returns one page of this size, as fsstore.Store does
)

// stagingDir holds multipart uploads in progress, under the prefix. Create
// refuses keys in it and List hides it.
const stagingDir = ".mv-staging/"

// Store is an archive.Store on one S3 bucket.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int64
	sse      sseSettings
	lockMode types.ObjectLockMode
	lockDays int
	log      *slog.Logger
	now      func() time.Time
}

var (
	_ archive.Store  = (*Store)(nil)
	_ archive.Pinger = (*Store)(nil)
)

// New returns a Store for o. It loads the AWS configuration (credentials
// from the SDK's default chain) and reads the SSE-C key file, but sends no
// request: Ping and Check do.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("archive/s3: bucket is required")
	}
	s := &Store{
		bucket:   o.Bucket,
		prefix:   o.Prefix,
		partSize: o.PartSize,
		lockDays: o.ObjectLockDays,
		log:      o.Logger,
		now:      time.Now,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	switch {
	case s.partSize == 0:
		s.partSize = DefaultPartSize
	case s.partSize < MinPartSize || s.partSize > MaxPartSize:
		return nil, fmt.Errorf("archive/s3: part size %d out of range [%d, %d]", o.PartSize, MinPartSize, MaxPartSize)
	}
	if strings.HasPrefix(o.Prefix, "/") || !utf8.ValidString(o.Prefix) || len(o.Prefix) > maxKeyBytes/2 {
		return nil, fmt.Errorf("archive/s3: invalid prefix %q", o.Prefix)
	}
	switch o.ObjectLockMode {
	case "":
		if o.ObjectLockDays != 0 {
			return nil, errors.New("archive/s3: object lock days set without a mode")
		}
	case string(types.ObjectLockModeGovernance), string(types.ObjectLockModeCompliance):
		if o.ObjectLockDays <= 0 || o.ObjectLockDays > 36500 {
			return nil, fmt.Errorf("archive/s3: object lock days %d out of range [1, 36500]", o.ObjectLockDays)
		}
		s.lockMode = types.ObjectLockMode(o.ObjectLockMode)
	default:
		return nil, fmt.Errorf("archive/s3: object lock mode %q: want GOVERNANCE or COMPLIANCE", o.ObjectLockMode)
	}
	sse, err := newSSE(o)
	if err != nil {
		return nil, err
	}
	s.sse = sse

	// Bounded connection set-up and waiting for response headers, so that a
	// dead endpoint gives an error rather than a hang; bodies stream without
	// a deadline (the caller's context bounds them).
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = 10 * time.Second
			tr.ResponseHeaderTimeout = 2 * time.Minute
		})
	loadOpts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("archive/s3: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("archive/s3: no region (set the s3 region or AWS_REGION)")
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("archive/s3: endpoint %q: want http(s)://host[:port]", o.Endpoint)
		}
		if sse.customerKey != nil && u.Scheme != "https" {
			// The customer key travels in a request header: never in clear.
			return nil, errors.New("archive/s3: sse-c needs an https endpoint")
		}
	}
	s.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Ranged GETs carry no checksum; the SDK would log each one.
		so.DisableLogOutputChecksumValidationSkipped = true
		so.Logger = sdkLogger{s.log}
	})
	return s, nil
}

// sdkLogger sends the SDK's own log lines (retries, clock skew) to slog
// instead of stderr.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "archive/s3: aws sdk: "+fmt.Sprintf(format, v...))
}

// Ping checks that the bucket answers (HeadBucket).
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return fmt.Errorf("archive/s3: head bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Check is a start-up check of the configuration against the bucket: it
// answers, and has Object Lock enabled if retention is configured.
func (s *Store) Check(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if s.lockMode == "" {
		return nil
	}
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &s.bucket})
	if err != nil {
		return fmt.Errorf("archive/s3: object lock configuration of %s: %w", s.bucket, err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return fmt.Errorf("archive/s3: bucket %s does not have Object Lock enabled, but retention is configured", s.bucket)
	}
	return nil
}

// # Reading

// Get reads n bytes of key from off (n < 0: to the end) with a ranged GET.
// A range that starts at or past the end reads nothing.
func (s *Store) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := archive.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("archive/s3: get %s: negative offset", key)
	}
	if n == 0 {
		if _, err := s.Head(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}
	switch {
	case n > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	default:
		// A whole object: ask for its checksum so the SDK verifies the body.
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	s.sse.get(in)
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isStatus(err, http.StatusRequestedRangeNotSatisfiable) {
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// Head returns the size and user metadata of key.
func (s *Store) Head(ctx context.Context, key string) (archive.ObjectInfo, error) {
	if err := archive.ValidateKey(key); err != nil {
		return archive.ObjectInfo{}, err
	}
	out, err := s.head(ctx, s.prefix+key, false)
	if err != nil {
		if isNotFound(err) && apiCode(err) != "NoSuchKey" {
			// A HEAD answer has no body: a missing bucket is a bare 404 too.
			// Ask, so that a misconfigured bucket is an error, not a world
			// in which every message is "not found".
			if berr := s.Ping(ctx); berr != nil {
				return archive.ObjectInfo{}, fmt.Errorf("archive/s3: head %s: %w", key, berr)
			}
		}
		return archive.ObjectInfo{}, s.wrap("head", key, err)
	}
	meta := out.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	return archive.ObjectInfo{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		Metadata: meta,
		Modified: aws.ToTime(out.LastModified),
	}, nil
}

func (s *Store) head(ctx context.Context, fullKey string, checksum bool) (*s3.HeadObjectOutput, error) {
	in := &s3.HeadObjectInput{Bucket: &s.bucket, Key: &fullKey}
	if checksum {
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	s.sse.head(in)
	return s.client.HeadObject(ctx, in)
}

// List returns up to limit keys (limit <= 0: 1000) under prefix that sort
// after startAfter, in ascending order, following ListObjectsV2 continuation
// tokens until the limit is reached or no key is left.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]archive.ObjectInfo, error) {
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("archive/s3: list: %w", err)
	}
	if len(startAfter) > maxKeyBytes || !utf8.ValidString(startAfter) {
		return nil, fmt.Errorf("archive/s3: list %q: %w: bad start key", prefix, archive.ErrInvalidKey)
	}
	if limit <= 0 {
		limit = defaultListPage
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(s.prefix + startAfter)
	}
	var res []archive.ObjectInfo
	for {
		in.MaxKeys = aws.Int32(int32(min(limit-len(res), 1000)))
		out, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("archive/s3: list %q: %w", prefix, err)
		}
		for _, o := range out.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok || strings.HasPrefix(k, stagingDir) {
				continue
			}
			res = append(res, archive.ObjectInfo{Key: k, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
			if len(res) >= limit {
				return res, nil
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return res, nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// Delete removes key; a missing key is not an error. In a versioned bucket
// (every Object Lock bucket is one) this adds a delete marker: the retained
// version stays, readable by version id, until its retention ends.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := archive.ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("archive/s3: delete %s: %w", key, err)
	}
	return nil
}

// # Retention

// SetLegalHold puts an Object Lock legal hold on key (on) or lifts it. While
// a hold is on, the object version cannot be deleted or overwritten, whatever
// its retention date. The bucket must have Object Lock enabled.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := archive.ValidateKey(key); err != nil {
		return err
	}
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	_, err := s.client.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{
		Bucket:            &s.bucket,
		Key:               aws.String(s.prefix + key),
		LegalHold:         &types.ObjectLockLegalHold{Status: status},
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return s.wrap("legal hold", key, err)
	}
	return nil
}

// LegalHold reports whether key has a legal hold on.
func (s *Store) LegalHold(ctx context.Context, key string) (bool, error) {
	if err := archive.ValidateKey(key); err != nil {
		return false, err
	}
	out, err := s.client.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		if apiCode(err) == "NoSuchObjectLockConfiguration" {
			return false, nil
		}
		return false, s.wrap("legal hold", key, err)
	}
	return out.LegalHold != nil && out.LegalHold.Status == types.ObjectLockLegalHoldStatusOn, nil
}

// Retention returns the Object Lock mode and retain-until date of key (""
// and the zero time if it has none).
func (s *Store) Retention(ctx context.Context, key string) (mode string, until time.Time, err error) {
	if err := archive.ValidateKey(key); err != nil {
		return "", time.Time{}, err
	}
	out, err := s.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		if apiCode(err) == "NoSuchObjectLockConfiguration" {
			return "", time.Time{}, nil
		}
		return "", time.Time{}, s.wrap("retention", key, err)
	}
	if out.Retention == nil {
		return "", time.Time{}, nil
	}
	return string(out.Retention.Mode), aws.ToTime(out.Retention.RetainUntilDate), nil
}

// retainUntil is the retain-until date for an object committed now.
func (s *Store) retainUntil() *time.Time {
	t := s.now().UTC().Add(time.Duration(s.lockDays) * 24 * time.Hour)
	return &t
}

// # Writing

// Create starts writing key. Nothing is visible under key until Commit.
// ctx bounds the part uploads that Write starts.
func (s *Store) Create(ctx context.Context, key string) (archive.ObjectWriter, error) {
	if err := archive.ValidateKey(key); err != nil {
		return nil, err
	}
	if strings.HasPrefix(key, stagingDir) {
		return nil, fmt.Errorf("archive/s3: create %s: keys under %s are reserved", key, stagingDir)
	}
	if len(s.prefix)+len(key) > maxKeyBytes {
		return nil, fmt.Errorf("archive/s3: create: key longer than %d bytes", maxKeyBytes)
	}
	return &objectWriter{
		s:     s,
		ctx:   ctx,
		key:   key,
		buf:   make([]byte, 0, s.partSize),
		whole: sha256.New(),
	}, nil
}

// objectWriter is one object being written; see the package comment.
type objectWriter struct {
	s     *Store
	ctx   context.Context
	key   string // without the prefix
	buf   []byte // the part being filled
	spare []byte // the buffer of the last finished part upload, for reuse
	whole hash.Hash
	size  int64

	// multipart staging, once the object outgrows one part
	stageKey string
	uploadID string
	parts    []types.CompletedPart
	inflight chan partResult // the part upload under way, if any

	err  error // sticky: the writer failed and has cleaned up
	done bool  // Commit or Abort was called
}

type partResult struct {
	part types.CompletedPart
	buf  []byte
	err  error
}

var errFinished = errors.New("archive/s3: writer already committed or aborted")

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if w.size >= maxCopySize {
			w.fail(fmt.Errorf("archive/s3: write %s: object larger than the %d bytes one copy can commit", w.key, int64(maxCopySize)))
			return n, w.err
		}
		if int64(len(w.buf)) == w.s.partSize {
			// Only now, with more bytes to come, is this a multipart object.
			if err := w.sendPart(); err != nil {
				w.fail(err)
				return n, w.err
			}
		}
		m := int(min(int64(len(p)), w.s.partSize-int64(len(w.buf)), maxCopySize-w.size))
		w.buf = append(w.buf, p[:m]...)
		w.whole.Write(p[:m])
		w.size += int64(m)
		n += m
		p = p[m:]
	}
	return n, nil
}

// sendPart starts uploading the full buffer as the next part, after the
// previous part upload has finished: at most two buffers exist at once.
func (w *objectWriter) sendPart() error {
	if w.uploadID == "" {
		if err := w.createUpload(w.ctx); err != nil {
			return err
		}
	}
	if err := w.waitPart(); err != nil {
		return err
	}
	num := int32(len(w.parts) + 1)
	body := w.buf
	ch := make(chan partResult, 1)
	ctx := w.ctx
	go func() { ch <- w.uploadPart(ctx, num, body) }()
	w.inflight = ch
	w.buf, w.spare = w.spare[:0], nil
	if w.buf == nil {
		w.buf = make([]byte, 0, w.s.partSize)
	}
	return nil
}

// waitPart waits for the part upload under way, if any.
func (w *objectWriter) waitPart() error {
	if w.inflight == nil {
		return nil
	}
	r := <-w.inflight
	w.inflight = nil
	w.spare = r.buf
	if r.err != nil {
		return r.err
	}
	w.parts = append(w.parts, r.part)
	return nil
}

func (w *objectWriter) createUpload(ctx context.Context) error {
	w.stageKey = w.s.prefix + stagingDir + randomName()
	in := &s3.CreateMultipartUploadInput{
		Bucket:            &w.s.bucket,
		Key:               &w.stageKey,
		ContentType:       aws.String("application/octet-stream"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	w.s.sse.create(in)
	out, err := w.s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return fmt.Errorf("archive/s3: put %s: start multipart upload: %w", w.key, err)
	}
	w.uploadID = aws.ToString(out.UploadId)
	return nil
}

func (w *objectWriter) uploadPart(ctx context.Context, num int32, body []byte) partResult {
	sum := sha256.Sum256(body)
	sum64 := base64.StdEncoding.EncodeToString(sum[:])
	in := &s3.UploadPartInput{
		Bucket:            &w.s.bucket,
		Key:               &w.stageKey,
		UploadId:          &w.uploadID,
		PartNumber:        aws.Int32(num),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(sum64),
	}
	w.s.sse.uploadPart(in)
	out, err := w.s.client.UploadPart(ctx, in)
	if err != nil {
		return partResult{buf: body, err: fmt.Errorf("archive/s3: put %s: part %d: %w", w.key, num, err)}
	}
	return partResult{buf: body, part: types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumSHA256: aws.String(sum64)}}
}

// Commit makes the object visible under its key with meta; see the package
// comment for the two paths.
func (w *objectWriter) Commit(ctx context.Context, meta map[string]string, ifAbsent bool) error {
	if w.done {
		return errFinished
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	if err := archive.ValidateMetadata(meta); err != nil {
		w.fail(fmt.Errorf("archive/s3: commit %s: %w", w.key, err))
		return w.err
	}
	var err error
	if w.uploadID == "" {
		err = w.putSingle(ctx, meta, ifAbsent)
	} else {
		err = w.commitMultipart(ctx, meta, ifAbsent)
	}
	w.buf, w.spare = nil, nil
	if err != nil {
		w.err = err
	}
	return err
}

func (w *objectWriter) putSingle(ctx context.Context, meta map[string]string, ifAbsent bool) error {
	sum := w.whole.Sum(nil) // the buffer is the whole object
	in := &s3.PutObjectInput{
		Bucket:            &w.s.bucket,
		Key:               aws.String(w.s.prefix + w.key),
		Body:              bytes.NewReader(w.buf),
		ContentLength:     aws.Int64(int64(len(w.buf))),
		ContentType:       aws.String("application/octet-stream"),
		Metadata:          meta,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum)),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if w.s.lockMode != "" {
		in.ObjectLockMode = w.s.lockMode
		in.ObjectLockRetainUntilDate = w.s.retainUntil()
	}
	w.s.sse.put(in)
	if _, err := w.s.client.PutObject(ctx, in); err != nil {
		return w.s.wrapPut(w.key, err)
	}
	return nil
}

func (w *objectWriter) commitMultipart(ctx context.Context, meta map[string]string, ifAbsent bool) error {
	// The last part (never empty: a part is sent only when more bytes follow).
	if err := w.waitPart(); err != nil {
		w.abortUpload()
		return err
	}
	r := w.uploadPart(ctx, int32(len(w.parts)+1), w.buf)
	if r.err != nil {
		w.abortUpload()
		return r.err
	}
	w.parts = append(w.parts, r.part)

	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          &w.s.bucket,
		Key:             &w.stageKey,
		UploadId:        &w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	}
	w.s.sse.complete(complete)
	done, err := w.s.client.CompleteMultipartUpload(ctx, complete)
	if err != nil {
		w.abortUpload()
		return fmt.Errorf("archive/s3: put %s: complete multipart upload: %w", w.key, err)
	}
	w.uploadID = ""
	stageVersion := done.VersionId
	defer w.deleteStaging(stageVersion)

	final := w.s.prefix + w.key
	if ifAbsent {
		// S3 honours If-None-Match on CopyObject; MinIO ignores it, so look
		// first. On MinIO a writer racing between this look and the copy can
		// still be overwritten (docs/S3.md).
		_, err := w.s.head(ctx, final, false)
		switch {
		case err == nil:
			return fmt.Errorf("archive/s3: put %s: %w", w.key, archive.ErrExists)
		case !isNotFound(err):
			return fmt.Errorf("archive/s3: put %s: check existing: %w", w.key, err)
		}
	}
	source := w.s.bucket + "/" + escapeKey(w.stageKey)
	if stageVersion != nil {
		source += "?versionId=" + url.QueryEscape(*stageVersion)
	}
	cp := &s3.CopyObjectInput{
		Bucket:            &w.s.bucket,
		Key:               &final,
		CopySource:        &source,
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          meta,
		ContentType:       aws.String("application/octet-stream"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	if ifAbsent {
		cp.IfNoneMatch = aws.String("*")
	}
	if w.s.lockMode != "" {
		cp.ObjectLockMode = w.s.lockMode
		cp.ObjectLockRetainUntilDate = w.s.retainUntil()
	}
	w.s.sse.copy(cp)
	out, err := w.s.client.CopyObject(ctx, cp)
	if err != nil {
		return w.s.wrapPut(w.key, err)
	}
	// The copy is server-side: check that the object S3 now holds has the
	// SHA-256 of the bytes written (S3 returns it; MinIO only on HEAD).
	var got string
	if out.CopyObjectResult != nil {
		got = aws.ToString(out.CopyObjectResult.ChecksumSHA256)
	}
	if got == "" {
		h, err := w.s.head(ctx, final, true)
		if err != nil {
			return fmt.Errorf("archive/s3: put %s: verify copy: %w", w.key, err)
		}
		got = aws.ToString(h.ChecksumSHA256)
	}
	want := base64.StdEncoding.EncodeToString(w.whole.Sum(nil))
	if got != "" && !strings.Contains(got, "-") && got != want {
		return fmt.Errorf("archive/s3: put %s: stored object checksum %s, wrote %s", w.key, got, want)
	}
	return nil
}

// Abort discards everything written. After Commit it does nothing.
func (w *objectWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.err == nil {
		w.abortUpload()
	}
	w.buf, w.spare = nil, nil
	return nil
}

// fail records err and releases what the writer holds on the server.
func (w *objectWriter) fail(err error) {
	w.err = err
	w.abortUpload()
}

// cleanupTimeout bounds the clean-up calls, which run on a fresh context:
// the caller's may be the one that was cancelled.
const cleanupTimeout = 30 * time.Second

// abortUpload aborts the staging multipart upload, if one is open, so that
// no parts are left behind.
func (w *objectWriter) abortUpload() {
	_ = w.waitPart()
	if w.uploadID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), cleanupTimeout)
	defer cancel()
	_, err := w.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &w.s.bucket, Key: &w.stageKey, UploadId: &w.uploadID})
	if err != nil && apiCode(err) != "NoSuchUpload" {
		w.s.log.Warn("archive/s3: abort multipart upload failed; a lifecycle rule must remove it",
			"key", w.stageKey, "upload_id", w.uploadID, "err", err)
	}
	w.uploadID = ""
}

// deleteStaging deletes the completed staging object (the exact version, so
// that a versioned bucket keeps no hidden copy).
func (w *objectWriter) deleteStaging(version *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), cleanupTimeout)
	defer cancel()
	_, err := w.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.s.bucket, Key: &w.stageKey, VersionId: version})
	if err != nil && !isNotFound(err) {
		w.s.log.Warn("archive/s3: delete staging object failed; a lifecycle rule must remove it",
			"key", w.stageKey, "err", err)
	}
}

// # Server-side encryption

type sseSettings struct {
	mode        types.ServerSideEncryption // "", AES256 or aws:kms
	kmsKeyID    string
	customerKey *customerKey // sse-c; a pointer so that printing a Store never shows it
}

// customerKey is an SSE-C key in the form the S3 headers take.
type customerKey struct {
	key64 string // base64 of the 32-byte key
	md564 string // base64 of its MD5
}

func (k *customerKey) String() string   { return "sse-c key (redacted)" }
func (k *customerKey) GoString() string { return "sse-c key (redacted)" }

func newSSE(o Options) (sseSettings, error) {
	var s sseSettings
	if o.SSE != "sse-kms" && o.SSEKMSKeyID != "" {
		return s, errors.New("archive/s3: an sse-kms key id is set but sse is not sse-kms")
	}
	if o.SSE != "sse-c" && o.SSECKeyFile != "" {
		return s, errors.New("archive/s3: an sse-c key file is set but sse is not sse-c")
	}
	switch o.SSE {
	case "":
	case "sse-s3":
		s.mode = types.ServerSideEncryptionAes256
	case "sse-kms":
		s.mode = types.ServerSideEncryptionAwsKms
		s.kmsKeyID = o.SSEKMSKeyID
	case "sse-c":
		if o.SSECKeyFile == "" {
			return s, errors.New("archive/s3: sse-c needs a key file")
		}
		k, err := readCustomerKey(o.SSECKeyFile)
		if err != nil {
			return s, err
		}
		s.customerKey = k
	default:
		return s, fmt.Errorf("archive/s3: sse %q: want sse-s3, sse-kms or sse-c", o.SSE)
	}
	return s, nil
}

// readCustomerKey reads a 256-bit SSE-C key: 32 raw bytes, or their base64.
// Errors name the file, never its content.
func readCustomerKey(path string) (*customerKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("archive/s3: sse-c key file: %w", err)
	}
	if fi.Size() > 4096 {
		return nil, fmt.Errorf("archive/s3: sse-c key file %s: too large", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("archive/s3: sse-c key file: %w", err)
	}
	defer clear(raw)
	key := raw
	if len(raw) != 32 {
		text := bytes.TrimSpace(raw)
		key = make([]byte, base64.StdEncoding.DecodedLen(len(text)))
		defer clear(key)
		n, err := base64.StdEncoding.Decode(key, text)
		if err != nil || n != 32 {
			return nil, fmt.Errorf("archive/s3: sse-c key file %s: want 32 bytes or their base64", path)
		}
		key = key[:n]
	}
	sum := md5.Sum(key)
	return &customerKey{
		key64: base64.StdEncoding.EncodeToString(key),
		md564: base64.StdEncoding.EncodeToString(sum[:]),
	}, nil
}

func (s sseSettings) put(in *s3.PutObjectInput) {
	in.ServerSideEncryption = s.mode
	if s.kmsKeyID != "" {
		in.SSEKMSKeyId = &s.kmsKeyID
	}
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

func (s sseSettings) create(in *s3.CreateMultipartUploadInput) {
	in.ServerSideEncryption = s.mode
	if s.kmsKeyID != "" {
		in.SSEKMSKeyId = &s.kmsKeyID
	}
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

func (s sseSettings) uploadPart(in *s3.UploadPartInput) {
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

func (s sseSettings) complete(in *s3.CompleteMultipartUploadInput) {
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

func (s sseSettings) copy(in *s3.CopyObjectInput) {
	in.ServerSideEncryption = s.mode
	if s.kmsKeyID != "" {
		in.SSEKMSKeyId = &s.kmsKeyID
	}
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
		in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

func (s sseSettings) get(in *s3.GetObjectInput) {
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

func (s sseSettings) head(in *s3.HeadObjectInput) {
	if k := s.customerKey; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), &k.key64, &k.md564
	}
}

// # Checks and errors

func (s *Store) wrap(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("archive/s3: %s %s: %w", op, key, archive.ErrNotFound)
	}
	return fmt.Errorf("archive/s3: %s %s: %w", op, key, err)
}

func (s *Store) wrapPut(key string, err error) error {
	if isStatus(err, http.StatusPreconditionFailed) || apiCode(err) == "PreconditionFailed" {
		return fmt.Errorf("archive/s3: put %s: %w", key, archive.ErrExists)
	}
	return fmt.Errorf("archive/s3: put %s: %w", key, err)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isStatus(err error, status int) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == status
}

// isNotFound is true for a missing object, not for a missing bucket (which
// is a configuration error and must not read as "no such message").
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	switch {
	case errors.As(err, &nsk), errors.As(err, &nf):
		return true
	case apiCode(err) == "NoSuchBucket":
		return false
	}
	return isStatus(err, http.StatusNotFound)
}

// escapeKey URL-escapes a key for x-amz-copy-source, keeping the slashes.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func randomName() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
