package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/miniotest"
	"github.com/mailvault/mailvaultd/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.RunWithBinary(m)) }

// mailvaultdBinary returns ./cmd/mailvaultd built once per test binary, or
// $MAILVAULTD_E2E_BIN.
func mailvaultdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MAILVAULTD_E2E_BIN"); p != "" {
		if !isExecutable(p) {
			t.Fatalf("e2e: MAILVAULTD_E2E_BIN=%s is not an executable file", p)
		}
		return p
	}
	return testkit.Binary(t)
}

// daemon is a mailvaultd run as a subprocess with a config file of its own.
type daemon struct {
	t       testing.TB
	bin     string
	Config  string // the config file
	Listen  string // smtp.listen
	HTTP    string // retrieval.listen
	Token   string // an auditor's token, for the HTTP API
	logPath string
	env     []string

	mu          sync.Mutex
	cmd         *exec.Cmd
	done        chan struct{}
	killed      bool // the test stopped it on purpose
	starts      int
	unexpected  []string // exits the test did not cause
	s3          *miniotest.Server
	bucket      string
	keyringPath string
}

type daemonConfig struct {
	listen  string            // smtp.listen
	nextHop string            // forward.next_hop
	s3      *miniotest.Server // the archive (archive.backend: s3)
	bucket  string
	milter  string // milter.listen; "" off
	// maxMessageBytes, when not 0, replaces the shipped smtp.max_message_bytes.
	maxMessageBytes int64
}

// newDaemon writes a config (testkit's, with every key written out; the
// SMTP limits from configs/mailvaultd.yaml; an S3 archive; debug logging)
// under dir and creates its keyring with `mailvaultd keys init -config`.
// Start runs it.
func newDaemon(t testing.TB, dir string, cfg daemonConfig) *daemon {
	t.Helper()
	if cfg.s3 == nil {
		t.Fatal("e2e: newDaemon needs a MinIO")
	}
	// The SMTP limits are the shipped example's, which the Postfix snippets
	// are sized against.
	prod, err := config.Parse([]byte(repoFile(t, "configs/mailvaultd.yaml")), "configs/mailvaultd.yaml")
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	c := testkit.Config(t, dir)
	c.SMTP.Listen = cfg.listen
	c.SMTP.Hostname = "mailvault.e2e.test"
	c.SMTP.MaxMessageBytes = prod.SMTP.MaxMessageBytes
	c.SMTP.MaxRecipients = prod.SMTP.MaxRecipients
	c.SMTP.MaxSessions = prod.SMTP.MaxSessions
	c.Forward.NextHop = cfg.nextHop
	c.Milter.Listen = cfg.milter
	if cfg.maxMessageBytes != 0 {
		c.SMTP.MaxMessageBytes = cfg.maxMessageBytes
	}
	c.Keys.Local.Keyring = filepath.Join(dir, "keys", "keyring.json")
	c.Archive.Backend = "s3"
	c.Archive.S3.Bucket = cfg.bucket
	c.Archive.S3.Region = miniotest.Region
	c.Archive.S3.Endpoint = cfg.s3.Endpoint
	c.Archive.S3.PathStyle = true
	c.Log.Level = "debug"
	d := &daemon{
		t:           t,
		bin:         mailvaultdBinary(t),
		Config:      testkit.WriteConfig(t, filepath.Join(dir, "mailvaultd.yaml"), c),
		Listen:      cfg.listen,
		HTTP:        c.Retrieval.Listen,
		logPath:     filepath.Join(dir, "mailvaultd.log"),
		s3:          cfg.s3,
		bucket:      cfg.bucket,
		keyringPath: c.Keys.Local.Keyring,
	}
	d.env = daemonEnv(cfg.s3)
	if out, err := d.run("keys", "init", "-config", d.Config); err != nil {
		t.Fatalf("e2e: mailvaultd keys init: %v\n%s", err, out)
	}
	out, err := d.run("users", "add", "e2e-auditor", "-auditor", "-config", d.Config)
	if err != nil {
		t.Fatalf("e2e: mailvaultd users add: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	d.Token = lines[len(lines)-1]
	t.Cleanup(d.stop)
	return d
}

// daemonEnv is this process's environment without AWS_ and MINIO_ settings,
// plus MinIO's credentials for the SDK's default chain, and without
// NOTIFY_SOCKET (the daemon is not under systemd here).
func daemonEnv(s *miniotest.Server) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "MINIO_") ||
			strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull)
	env = append(env, "AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.SecretKey, "AWS_REGION="+miniotest.Region)
	return env
}

// run runs one mailvaultd subcommand to completion.
func (d *daemon) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = d.env
	return cmd.CombinedOutput()
}

// Start runs `mailvaultd serve -config` and waits until it greets on its SMTP
// port; it fails the test if the daemon exits first or takes over 60s.
func (d *daemon) Start() {
	d.t.Helper()
	d.mu.Lock()
	running := d.cmd != nil
	d.mu.Unlock()
	if running {
		d.t.Fatal("e2e: mailvaultd already running")
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	d.mu.Lock()
	d.starts++
	n := d.starts
	d.mu.Unlock()
	fmt.Fprintf(logf, "=== e2e: start %d at %s\n", n, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, "serve", "-config", d.Config)
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		d.t.Fatalf("e2e: start mailvaultd: %v", err)
	}
	done := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.done, d.killed = cmd, done, false
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		d.mu.Lock()
		if !d.killed {
			d.unexpected = append(d.unexpected, fmt.Sprintf("start %d: %v", n, err))
		}
		d.mu.Unlock()
		close(done)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if greet(d.Listen) == nil {
			return
		}
		select {
		case <-done:
			d.mu.Lock()
			d.cmd = nil
			d.mu.Unlock()
			d.t.Fatalf("e2e: mailvaultd serve exited before accepting mail (%s)\n--- mailvaultd log ---\n%s",
				cmd.ProcessState, d.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("e2e: mailvaultd does not greet on %s after 60s\n--- mailvaultd log ---\n%s", d.Listen, d.log())
		}
	}
}

// Kill sends SIGKILL to the daemon by PID (a crash: no drain, no cleanup)
// and waits for it to be gone.
func (d *daemon) Kill() { d.signal(syscall.SIGKILL, 0) }

// stop sends SIGTERM, waits up to 40s for the drain, then SIGKILL.
func (d *daemon) stop() { d.signal(syscall.SIGTERM, 40*time.Second) }

func (d *daemon) signal(sig syscall.Signal, grace time.Duration) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	if cmd == nil {
		d.mu.Unlock()
		return
	}
	d.killed = true
	d.mu.Unlock()
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
		case <-time.After(grace):
			d.t.Logf("e2e: mailvaultd ignored %v for %v; killing it", sig, grace)
			_ = cmd.Process.Kill()
		}
	}
	<-done
	d.mu.Lock()
	d.cmd = nil
	d.mu.Unlock()
}

// Running reports whether the daemon process is alive.
func (d *daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// UnexpectedExits lists the exits the test did not cause (crashes).
func (d *daemon) UnexpectedExits() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.unexpected...)
}

// Get runs `mailvaultd get ID -o FILE -config` and returns the bytes.
func (d *daemon) Get(id, file string) ([]byte, error) {
	out, err := d.run("get", id, "-o", file, "-config", d.Config)
	if err != nil {
		return nil, fmt.Errorf("mailvaultd get %s: %v\n%s", id, err, out)
	}
	return os.ReadFile(file)
}

// Raw fetches message id over the HTTP API as the auditor.
func (d *daemon) Raw(id string) ([]byte, error) {
	req, err := http.NewRequest("GET", "http://"+d.HTTP+"/v1/messages/"+id+"/raw", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "message/rfc822" {
		return nil, fmt.Errorf("GET /v1/messages/%s/raw: %d %s", id, res.StatusCode, res.Header.Get("Content-Type"))
	}
	return b, nil
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return tail(b, 8000)
}

// # The archive, seen from outside the daemon

// archiveMessagePrefix is where the Vault keeps messages (archive/vault.go):
// msg/<id> is the sealed message, msg/<id>.manifest its manifest. Index
// entries and dedupe markers live under other prefixes.
const archiveMessagePrefix = "msg/"

// archiveCount is how the archive's message objects map to archive ids.
type archiveCount struct {
	perID   map[string]int // acknowledged id -> message objects with that id
	unknown []string       // objects whose id was never acknowledged to Postfix
	total   int            // message objects (msg/<id>, not the sidecars)
}

// countArchived lists the bucket's msg/ prefix with the AWS SDK, straight
// from MinIO, and matches the objects against the archive ids mailvaultd
// acknowledged (from the maillog). A message archived exactly once has one
// message object; an object whose id nobody was told about is a duplicate
// or orphaned copy.
func (d *daemon) countArchived(acked []string) archiveCount {
	d.t.Helper()
	keys, err := listS3(d.s3, d.bucket, archiveMessagePrefix)
	if err != nil {
		d.t.Fatalf("e2e: listing s3://%s/%s: %v", d.bucket, archiveMessagePrefix, err)
	}
	c := archiveCount{perID: map[string]int{}}
	for _, id := range acked {
		c.perID[id] = 0
	}
	for _, key := range keys {
		id, sidecar, _ := strings.Cut(strings.TrimPrefix(key, archiveMessagePrefix), ".")
		_, ok := c.perID[id]
		if !ok {
			c.unknown = append(c.unknown, key)
		}
		if sidecar == "" {
			c.total++
			if ok {
				c.perID[id]++
			}
		}
	}
	return c
}

// classifyUnacknowledged splits unacknowledged objects by whether the
// archive's all/ listing (all/<inv time>-<id>, see docs/DESIGN.md) names their
// id: listed ones are copies a reader would see twice, unlisted ones are
// leftovers of a transaction that died before its commit finished.
func (d *daemon) classifyUnacknowledged(keys []string) (listed, orphans []string) {
	d.t.Helper()
	all, err := listS3(d.s3, d.bucket, "all/")
	if err != nil {
		d.t.Fatalf("e2e: listing s3://%s/all/: %v", d.bucket, err)
	}
	inListing := map[string]bool{}
	for _, k := range all {
		if i := strings.LastIndex(k, "-"); i >= 0 {
			inListing[k[i+1:]] = true
		}
	}
	for _, k := range keys {
		id, _, _ := strings.Cut(strings.TrimPrefix(k, archiveMessagePrefix), ".")
		if inListing[id] {
			listed = append(listed, k)
		} else {
			orphans = append(orphans, k)
		}
	}
	return listed, orphans
}

// diffBytes reports a difference readably.
func diffBytes(name string, got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	lo := max(0, n-80)
	return fmt.Errorf("%s: %d bytes, want %d; first difference at byte %d:\n got: %q\nwant: %q",
		name, len(got), len(want), n, got[lo:min(len(got), n+80)], want[lo:min(len(want), n+80)])
}
