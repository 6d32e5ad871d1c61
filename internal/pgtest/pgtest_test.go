package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestStartGivesSeparateLoopbackDatabases(t *testing.T) {
	dsnA, dsnB := Start(t), Start(t)
	if dsnA == dsnB {
		t.Fatalf("two Starts gave the same DSN %s", dsnA)
	}
	for _, dsn := range []string{dsnA, dsnB} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if host, _, _ := net.SplitHostPort(u.Host); host != "127.0.0.1" || u.Scheme != "postgres" {
			t.Errorf("DSN %s: want postgres://…@127.0.0.1:PORT/…", dsn)
		}
		if _, ok := u.User.Password(); !ok || u.Query().Get("sslmode") != "disable" {
			t.Errorf("DSN %s: want a password and sslmode=disable", dsn)
		}
	}
	a, b := connect(t, dsnA), connect(t, dsnB)
	mustExec(t, a, "CREATE TABLE notes (body text)")
	mustExec(t, a, "INSERT INTO notes VALUES ($1)", "only in A")

	var n int
	if err := a.QueryRow(context.Background(), "SELECT count(*) FROM notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count in A = %d, %v; want 1", n, err)
	}
	// The table is A's alone: B is a fresh database.
	var found bool
	if err := b.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'notes')").Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found {
		t.Error("database B has database A's table")
	}
	// No one can log in without the password.
	u, _ := url.Parse(dsnA)
	u.User = url.UserPassword(Superuser, "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, u.String()); err == nil {
		c.Close(ctx)
		t.Error("a login with a wrong password succeeded")
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		dsn := Start(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		name = u.Path[1:]
		// A connection the test leaves open must not stop the drop.
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn
	})
	conn := connect(t, Start(t))
	var exists bool
	if err := conn.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestParallelStarts(t *testing.T) {
	for i := range 8 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, Start(t))
			var got int
			if err := conn.QueryRow(context.Background(), "SELECT $1::int + 1", i).Scan(&got); err != nil || got != i+1 {
				t.Fatalf("SELECT %d + 1 = %d, %v", i, got, err)
			}
		})
	}
}

func TestDumpHoldsTablesAndRows(t *testing.T) {
	dsn := Start(t)
	conn := connect(t, dsn)
	mustExec(t, conn, "CREATE TABLE sealed_messages (id bigint PRIMARY KEY, subject text)")
	mustExec(t, conn, "INSERT INTO sealed_messages VALUES (1, 'quarterly-figures-7f3a')")

	dump := Dump(t, dsn)
	for _, want := range []string{"CREATE TABLE public.sealed_messages", "quarterly-figures-7f3a"} {
		if !bytes.Contains(dump, []byte(want)) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	// Another database's dump does not hold this one's rows.
	if other := Dump(t, Start(t)); bytes.Contains(other, []byte("quarterly-figures-7f3a")) {
		t.Error("a fresh database's dump holds another database's row")
	}
}

func TestRestartKeepsData(t *testing.T) {
	dsn := Start(t)
	before := connect(t, dsn)
	mustExec(t, before, "CREATE TABLE kept (v text)")
	mustExec(t, before, "INSERT INTO kept VALUES ('survives')")

	Restart(t)

	// The old connection was cut by the shutdown.
	if err := before.Ping(context.Background()); err == nil {
		t.Error("a connection from before the restart still works")
	}
	after := connect(t, dsn)
	var v string
	if err := after.QueryRow(context.Background(), "SELECT v FROM kept").Scan(&v); err != nil || v != "survives" {
		t.Fatalf("after restart: %q, %v; want survives", v, err)
	}
	// New databases still come from the restarted server.
	connect(t, Start(t))
}

// TestShutdownRemovesEverything runs a server of its own (the shared one
// lives until Run returns) and checks that shutdown leaves no process, no
// listener and no directory behind.
func TestShutdownRemovesEverything(t *testing.T) {
	s, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		_ = s.shutdown()
		t.Fatalf("%v\n%s", err, s.logTail())
	}
	pid := s.cmd.Process.Pid
	conn := connect(t, s.dsn("postgres"))
	var backendPID int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backendPID); err != nil {
		t.Fatal(err)
	}

	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{pid, backendPID} {
		if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after shutdown (kill 0: %v)", p, err)
		}
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after shutdown (stat: %v)", s.dir, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on port %d", s.port)
	}
}

func TestServerNeverRunsAsRoot(t *testing.T) {
	s := sharedServer(t)
	conn := connect(t, Start(t))
	_ = conn
	fi, err := os.Stat(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid == 0 {
		t.Errorf("data directory %s is owned by root", s.dataDir)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\nUid:\t0\t")) {
		t.Errorf("postgres runs as root:\n%s", b)
	}
}

// TestStartWithoutRunFails: a package that forgets TestMain would leave
// its server running, so Start refuses, saying what to add.
func TestStartWithoutRunFails(t *testing.T) {
	running.Store(false)
	defer running.Store(true)
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec)
	}()
	<-done
	if !strings.Contains(rec.msg, "os.Exit(pgtest.Run(m))") {
		t.Errorf("Start without Run: fatal %q; want it to name pgtest.Run", rec.msg)
	}
}

// fatalRecorder keeps a Fatal's message and ends only its own goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestDBName(t *testing.T) {
	for _, name := range []string{"TestX", "Test/With spaces/And-Dashes", string(bytes.Repeat([]byte("Long"), 40))} {
		t.Run("", func(t *testing.T) {
			n := dbName(fakeName{t, name})
			if len(n) > 63 {
				t.Errorf("dbName(%q) = %q, %d bytes; PostgreSQL keeps 63", name, n, len(n))
			}
			for _, r := range n {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
					t.Errorf("dbName(%q) = %q holds %q", name, n, r)
				}
			}
		})
	}
}

type fakeName struct {
	testing.TB
	name string
}

func (f fakeName) Name() string { return f.name }
