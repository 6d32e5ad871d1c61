// Package miniotest starts a real MinIO server for tests: it finds (or builds
// once, into <repo>/.tools/bin) the pinned minio binary, runs it on a free
// loopback port with a temporary data directory, and kills it by PID when the
// test ends.
//
// miniotest is test support: no non-test code may import it. The server it
// starts listens on 127.0.0.1 only and makes no outbound connection (update
// checks, call-home and the console are switched off).
package miniotest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailvault/mailvaultd/internal/testkit"
)

// MinIOModule is the pinned MinIO version the harness builds.
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// Region is the region MinIO answers for.
const Region = "us-east-1"

// KMSKeyName is the name of MinIO's built-in static KMS key when the server
// is started with Config.KMS (usable as an SSE-KMS key id).
const KMSKeyName = "mailvault-test-key"

// Config selects optional server features.
type Config struct {
	// TLS serves HTTPS with a fresh self-signed certificate for 127.0.0.1
	// (Server.CAFile holds it in PEM). MinIO refuses SSE-C without TLS.
	TLS bool
	// KMS configures MinIO's static single-key KMS (MINIO_KMS_SECRET_KEY),
	// which enables SSE-S3 and SSE-KMS with key id KMSKeyName.
	KMS bool
	// AccessKey and SecretKey set the root credentials (default: random).
	// A test that talks to another AWS double with fixed credentials can
	// give both the same identity, as one IAM principal has in production.
	AccessKey, SecretKey string
}

// Server is one running MinIO.
type Server struct {
	Endpoint  string // http(s)://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	DataDir   string
	CAFile    string // PEM of the server certificate (TLS only)

	t       testing.TB
	bin     string
	cfg     Config
	addr    string
	console string
	certDir string
	kmsKey  string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a plain-HTTP MinIO.
func Start(t testing.TB) *Server { return StartWith(t, Config{}) }

// StartWith starts a MinIO with the features of cfg.
func StartWith(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	if cfg.AccessKey == "" {
		cfg.AccessKey = "mvtest-" + randHex(t, 4)
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = randHex(t, 16)
	}
	s := &Server{
		AccessKey: cfg.AccessKey,
		SecretKey: cfg.SecretKey,
		DataDir:   filepath.Join(dir, "data"),
		t:         t,
		bin:       bin,
		cfg:       cfg,
		addr:      testkit.FreeAddr(t),
		console:   testkit.FreeAddr(t),
		logPath:   filepath.Join(dir, "minio.log"),
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if cfg.TLS {
		scheme = "https"
		s.certDir = filepath.Join(dir, "certs")
		s.CAFile = filepath.Join(s.certDir, "public.crt")
		writeSelfSigned(t, s.certDir)
	}
	if cfg.KMS {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		s.kmsKey = KMSKeyName + ":" + base64.StdEncoding.EncodeToString(k)
	}
	s.Endpoint = scheme + "://" + s.addr
	t.Cleanup(s.Stop)
	s.start()
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("miniotest: server already running")
	}
	args := []string{"server", "--quiet", "--address", s.addr, "--console-address", s.console}
	if s.certDir != "" {
		args = append(args, "--certs-dir", s.certDir)
	}
	args = append(args, s.DataDir)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(baseEnv(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
		"MINIO_REGION="+Region,
		"MINIO_API_REQUESTS_DEADLINE=1m",
	)
	if s.kmsKey != "" {
		cmd.Env = append(cmd.Env, "MINIO_KMS_SECRET_KEY="+s.kmsKey)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("miniotest: start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(done, 90*time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-done
		s.cmd = nil
		s.t.Fatalf("miniotest: %v\n--- minio log ---\n%s", err, s.log())
	}
}

// waitReady polls /minio/health/live until it answers 200 without MinIO's
// "not initialised yet" status header.
func (s *Server) waitReady(exited <-chan struct{}, limit time.Duration) error {
	client := s.HTTPClient()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/minio/health/live", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") == "" {
				cancel()
				return nil
			}
			last = fmt.Errorf("health: %s (server status %q)", resp.Status, resp.Header.Get("X-Minio-Server-Status"))
		} else {
			last = err
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("minio at %s not ready after %v: %v", s.Endpoint, limit, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("minio exited before it was ready (last probe: %v)", last)
		case <-tick.C:
		}
	}
}

// Stop kills the server (by PID) and waits for it to exit. The data
// directory is kept, so Restart brings the same objects back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart starts the stopped server again on the same address and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	return string(b)
}

// HTTPClient returns an HTTP client that trusts the server's certificate.
func (s *Server) HTTPClient() *http.Client {
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	if s.CAFile != "" {
		pool := x509.NewCertPool()
		pemBytes, err := os.ReadFile(s.CAFile)
		if err == nil {
			pool.AppendCertsFromPEM(pemBytes)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Client returns a plain S3 client (static root credentials, path style),
// independent of any code under test, for setting up and checking buckets.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   s.HTTPClient(),
	})
}

// NewBucket creates bucket name; with objectLock the bucket is created with
// S3 Object Lock enabled (which also turns versioning on).
func (s *Server) NewBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if objectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := s.Client().CreateBucket(ctx, in); err != nil {
		t.Fatalf("miniotest: create bucket %s: %v", name, err)
	}
}

// SetEnv points the AWS SDK's default credential chain at this server for
// the duration of t (static keys in the environment; no shared config file,
// no instance metadata lookups).
func (s *Server) SetEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_PROFILE", "")
	if s.CAFile != "" {
		t.Setenv("AWS_CA_BUNDLE", s.CAFile)
	} else {
		t.Setenv("AWS_CA_BUNDLE", "")
	}
}

// baseEnv is the environment minio runs with: this process's, minus any
// MINIO_ or AWS_ settings that could leak in and change its behaviour.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MINIO_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// # Binary

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of the minio binary, building it into
// <repo>/.tools/bin the first time (a few minutes). It fails the test, never
// skips it, when the binary cannot be had.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = findOrBuild() })
	if binErr != nil {
		t.Fatalf("miniotest: no minio binary: %v", binErr)
	}
	return binPath
}

func findOrBuild() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, ".tools", "bin")
	bin := filepath.Join(binDir, "minio")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	// Several test binaries may get here at once: one builds, the others
	// wait on the lock and then find the binary.
	lock, err := os.OpenFile(filepath.Join(binDir, ".minio.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) {
		return bin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%s is missing and the go tool to build it is not on PATH: %w", bin, err)
	}
	cmd := exec.Command(goBin, "install", MinIOModule)
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOFLAGS=-buildvcs=false")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s is missing and `GOBIN=%s go install %s` failed: %v\n%s", bin, binDir, MinIOModule, err, out.String())
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("go install %s succeeded but %s is not there", MinIOModule, bin)
	}
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// repoRoot walks up from the working directory (a package directory under
// go test) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// # Small things

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// writeSelfSigned writes public.crt and private.key (MinIO's names) for a
// self-signed certificate valid for 127.0.0.1.
func writeSelfSigned(t testing.TB, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "miniotest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
