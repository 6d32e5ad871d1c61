// Package pgtest runs a real PostgreSQL server for tests: Debian's server
// binaries (/usr/lib/postgresql/*/bin), one server per test binary in a
// temporary directory on a free loopback port, and a fresh database for
// every Start. A package that uses it stops the server when its test binary
// ends by calling Run from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// pgtest is test support: no non-test code may import it. It never touches
// the system cluster (no pg_ctlcluster, no service, no /var/run/postgresql):
// its server has its own data directory, port and socket directory, listens
// on 127.0.0.1 only, and runs as the postgres system user when the tests run
// as root (initdb and postgres refuse root). It fails a test, never skips
// it, when PostgreSQL is missing.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the role every DSN from Start logs in as. It owns
// the cluster, so a test may create roles, extensions and schemas freely.
const Superuser = "mvtest"

// readyWait bounds how long a starting server may take to accept a login.
const readyWait = 60 * time.Second

// stopWait bounds a fast shutdown before the server is killed.
const stopWait = 30 * time.Second

var (
	running atomic.Bool // Run is between m.Run's start and the shutdown

	sharedOnce sync.Once
	shared     *server
	sharedErr  error
)

// Run runs the tests of m and then stops the package's server (if a test
// started one) and removes its directory. It returns m.Run's exit code, or 1
// when the tests passed but the server could not be stopped cleanly. A
// TestMain that does its own setup calls it in place of m.Run.
func Run(m *testing.M) int {
	running.Store(true)
	code := m.Run()
	running.Store(false)
	if shared != nil {
		if err := shared.shutdown(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Start returns the DSN of a new, empty database on the test binary's
// PostgreSQL server, starting the server on first use. The database is
// dropped (with any connections the test left open) when t ends.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	s := sharedServer(t)
	name := dbName(t)
	if err := s.createDatabase(name); err != nil {
		t.Fatalf("pgtest: %v\n--- postgres log ---\n%s", err, s.logTail())
	}
	t.Cleanup(func() {
		if err := s.dropDatabase(name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.dsn(name)
}

// Restart stops the test binary's server (a fast shutdown: open connections
// are cut) and starts it again on the same port with the same data, for
// tests of what a client does when its database goes away and comes back.
// Every test sharing the server sees the outage, so a test that restarts it
// must not run in parallel with other users of pgtest.
func Restart(t testing.TB) {
	t.Helper()
	s := sharedServer(t)
	if err := s.restart(); err != nil {
		t.Fatalf("pgtest: restart: %v\n--- postgres log ---\n%s", err, s.logTail())
	}
}

// Dump returns pg_dump's plain-SQL dump (schema and data) of the database
// dsn names, as an operator's backup of it would hold it.
func Dump(t testing.TB, dsn string) []byte {
	t.Helper()
	s := sharedServer(t)
	out, err := s.dump(dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return out
}

func sharedServer(t testing.TB) *server {
	t.Helper()
	if !running.Load() {
		t.Fatal("pgtest: the server is only stopped if this package's TestMain runs its tests " +
			"through pgtest.Run: func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }")
	}
	sharedOnce.Do(func() {
		shared, sharedErr = newServer()
		if sharedErr == nil {
			if err := shared.start(); err != nil {
				sharedErr = fmt.Errorf("%w\n--- postgres log ---\n%s", err, shared.logTail())
				_ = shared.shutdown()
			}
		}
	})
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// # The server

// server is one PostgreSQL cluster in a temporary directory.
type server struct {
	bin      string // directory of initdb, postgres and pg_dump
	dir      string // temporary directory holding everything below
	dataDir  string
	logPath  string
	port     int
	password string
	cred     *syscall.Credential // the postgres user's, when running as root

	// mu is held for reading while a database is created or dropped and
	// for writing while the server stops or starts, so no Start races a
	// Restart.
	mu   sync.RWMutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// newServer finds the binaries, makes the directory (owned by the user the
// server will run as) and runs initdb; start then runs the server.
func newServer() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempBase(cred), "pgtest-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{
		bin:      bin,
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		logPath:  filepath.Join(dir, "postgres.log"),
		port:     port,
		password: randHex(16),
		cred:     cred,
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *server) initdb() error {
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return err
	}
	if err := s.chown(s.dir, pwfile); err != nil {
		return err
	}
	// Password logins only, also on the socket, as the product logs in.
	cmd := s.command("initdb",
		"--pgdata="+s.dataDir,
		"--username="+Superuser,
		"--pwfile="+pwfile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
		"--no-instructions",
	)
	out, err := cmd.CombinedOutput()
	os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb in %s: %v\n%s", s.dataDir, err, out)
	}
	return nil
}

// start runs postgres and waits until it accepts a login.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

func (s *server) startLocked() error {
	if s.cmd != nil {
		return errors.New("server already running")
	}
	// Settings on the command line override the data directory's
	// postgresql.conf; fsync and friends are off because a test's data
	// need not survive a machine crash (a Restart is a clean shutdown).
	cmd := s.command("postgres",
		"-D", s.dataDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+s.dir,
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group keeps a terminal's ^C away from it (Run stops
	// it); SIGQUIT, an immediate shutdown, ends it should the test binary
	// die first. Go sets the death signal after dropping to cred, so it
	// survives the switch of user.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		s.cmd, s.done = nil, nil
		return err
	}
	return nil
}

// waitReady logs in until a login succeeds, the server exits, or readyWait
// passes.
func (s *server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(readyWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on 127.0.0.1:%d not ready after %v: %v", s.port, readyWait, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited before it was ready (last login: %v)", last)
		case <-tick.C:
		}
	}
}

// stopLocked shuts the server down fast (SIGINT: roll back open
// transactions, cut connections, checkpoint) and kills it if that takes
// longer than stopWait. The data directory is kept.
func (s *server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd, s.done = nil, nil }()
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopWait):
	}
	// Kill the whole group: the postmaster and any backends it left.
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	return fmt.Errorf("postgres (pid %d) ignored a fast shutdown for %v and was killed", s.cmd.Process.Pid, stopWait)
}

func (s *server) restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		return err
	}
	return s.startLocked()
}

// shutdown stops the server and removes its directory.
func (s *server) shutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.stopLocked()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove %s: %w", s.dir, rmErr))
	}
	return err
}

func (s *server) dsn(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(Superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// # Databases

func (s *server) createDatabase(name string) error {
	return s.admin("CREATE DATABASE " + pgx.Identifier{name}.Sanitize())
}

// dropDatabase drops name, FORCE ending the sessions a test left open (a
// pool it did not close) rather than failing on them.
func (s *server) dropDatabase(name string) error {
	return s.admin("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)")
}

// admin runs one statement in the maintenance database on a connection of
// its own (pgx.Conn is not safe for concurrent use, and a Restart would
// break a kept one).
func (s *server) admin(sql string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return fmt.Errorf("connect to 127.0.0.1:%d: %w", s.port, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func (s *server) dump(dsn string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// pg_dump is a client: it runs as the test's user, not as postgres.
	cmd := exec.Command(filepath.Join(s.bin, "pg_dump"), "--no-password", "--format=plain", "--dbname="+dsn)
	cmd.Env = clientEnv()
	cmd.Dir = s.dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pg_dump: %v\n%s", err, errOut.String())
	}
	return out.Bytes(), nil
}

// dbName makes a database name unique to this call that still says which
// test it belongs to, within PostgreSQL's 63-byte limit.
func dbName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() == 40 {
			break
		}
	}
	return "t_" + b.String() + "_" + randHex(6)
}

// # Processes and users

// command returns a command for the server binary name that runs as the
// server's user in its directory, with none of the PG* variables that could
// point it at another cluster.
func (s *server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(clientEnv(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

func (s *server) chown(paths ...string) error {
	if s.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	return string(b)
}

// serverCredential is the postgres system user's when the tests run as root
// and nil (run as ourselves) otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and initdb refuses root, but there is no postgres user to run it as "+
			"(Debian's postgresql package creates it: apt-get install postgresql): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// tempBase is where the server's directory goes: the usual temporary
// directory, unless the server runs as another user who could not reach it
// (TMPDIR under /root), then /tmp.
func tempBase(cred *syscall.Credential) string {
	base := os.TempDir()
	if cred == nil {
		return base
	}
	for dir := base; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if dir == filepath.Dir(dir) {
			return base
		}
	}
}

// clientEnv is this process's environment minus the PG* variables
// (PGHOST, PGPORT, PGDATA, PGPASSFILE…) that would point a PostgreSQL
// program somewhere else.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// # Binaries

// binDir returns the newest /usr/lib/postgresql/VERSION/bin that holds
// initdb, postgres and pg_dump.
func binDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	var dirs []string
	for _, m := range matches {
		dir := filepath.Dir(m)
		if isExecutable(filepath.Join(dir, "postgres")) && isExecutable(filepath.Join(dir, "pg_dump")) {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin " +
			"(install them: apt-get install postgresql; test/run.sh does)")
	}
	sort.Slice(dirs, func(i, j int) bool { return majorVersion(dirs[i]) > majorVersion(dirs[j]) })
	return dirs[0], nil
}

// majorVersion reads 15 out of /usr/lib/postgresql/15/bin.
func majorVersion(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// freePort asks the kernel for a loopback port no one holds right now.
// PostgreSQL binds it a moment later; on Restart it binds it again.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return fmt.Sprintf("%x", b)
}
