package main

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"
)

// crashMessage is message n of the crash tests: every one carries the word
// kestrel, its own word kestrelN and one of seven group words, padded so
// that a rebuild of a few hundred takes more than one batch.
func crashMessage(n int) []byte {
	return fmt.Appendf(nil, "From: a@example.test\r\nTo: bob@example.test\r\nSubject: kestrel report %d\r\n\r\n"+
		"kestrel%d grp%d\r\n%s\r\n", n, n, n%7, strings.Repeat("filler words for the rebuild to read. ", 50))
}

// deliver sends one message and returns its archive id, or the error of a
// daemon that went away.
func deliver(addr string, msg []byte) (string, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Mail("a@example.test", nil); err != nil {
		return "", err
	}
	if err := c.Rcpt("bob@example.test", nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	const p = "Ok: archived as "
	i := strings.Index(resp.StatusText, p)
	if i < 0 {
		return "", fmt.Errorf("reply %q has no archive id", resp.StatusText)
	}
	c.Quit()
	return resp.StatusText[i+len(p):], nil
}

// acked is the messages that got a 250: number → archive id.
type acked struct {
	mu  sync.Mutex
	ids map[int]string
}

func (a *acked) add(n int, id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids[n] = id
	return len(a.ids)
}

// sendFrom delivers messages numbered from next.Add(1) up to last from
// senders goroutines until one fails; each 250 is recorded in a and
// signalled on each250 (when not nil). It returns the first error.
func sendFrom(addr string, senders int, next *atomic.Int64, last int, a *acked, each250 chan<- struct{}) error {
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > last {
					return
				}
				id, err := deliver(addr, crashMessage(n))
				if err != nil {
					errs <- fmt.Errorf("message %d: %w", n, err)
					return
				}
				a.add(n, id)
				if each250 != nil {
					each250 <- struct{}{}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// verifyCounts reads "A archived, R rows, M missing, O orphans" from
// catalog verify's output.
var verifyCounts = regexp.MustCompile(`(\d+) archived, (\d+) rows, (\d+) missing, (\d+) orphans`)

func verifyLine(t *testing.T, out string) (archived, rows, missing, orphans int) {
	t.Helper()
	m := verifyCounts.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counts in catalog verify's output:\n%s", out)
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return n[0], n[1], n[2], n[3]
}

// killedBySIGKILL fails unless err is the exit of a process SIGKILLed.
func killedBySIGKILL(t *testing.T, what string, err error) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%s: exited %v before it was killed; the test killed nothing", what, err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s: exited %v, not by SIGKILL; the test killed nothing", what, err)
	}
}

// TestCatalogSurvivesSIGKILL: four senders deliver continuously while the
// daemon is SIGKILLed after a random number of 250s; after a restart they
// finish. `catalog verify` then passes or `-repair` mends it, and every
// message that got a 250 is found by `search` exactly once. Then a
// `catalog rebuild` of a lost catalog is SIGKILLed once it has written
// rows; run again it resumes, verify passes and the same queries give the
// same answers as before.
func TestCatalogSurvivesSIGKILL(t *testing.T) {
	const senders, total = 4, 320
	st := newSetup(t)
	a := &acked{ids: map[int]string{}}
	var next atomic.Int64

	// Delivery, killed at the killAt-th 250.
	killAt := 20 + rand.IntN(60)
	d := startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	each250 := make(chan struct{}, total)
	sent := make(chan error, 1)
	go func() { sent <- sendFrom(st.smtpAddr, senders, &next, total, a, each250) }()
	for range killAt {
		<-each250
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedBySIGKILL(t, "serve", d.cmd.Wait())
	if err := <-sent; err == nil {
		t.Fatal("every message was delivered before the kill; the test killed nothing mid-delivery")
	}
	t.Logf("killed after %d 250s; %d acknowledged before the senders noticed", killAt, len(a.ids))

	// Restart, and deliver the rest (the messages in flight at the kill
	// are not sent again: they may or may not be archived, unacknowledged).
	d = startDaemon(t, st.bin, st.dir, "-config", st.cfg)
	if err := sendFrom(st.smtpAddr, senders, &next, total, a, nil); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	stopDaemon(t, d)

	r := runCLI(t, st.bin, st.dir, "catalog", "verify", "-config", st.cfg)
	if _, _, missing, orphans := verifyLine(t, r.stdout); r.code != 0 {
		if orphans != 0 {
			t.Errorf("orphan rows after a kill during delivery (a row is written only after its message):\n%s", r.stdout)
		}
		t.Logf("verify after the kill: %d missing, %d orphans; repairing", missing, orphans)
		if r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-repair", "-config", st.cfg); r.code != 0 || !strings.Contains(r.stdout, "repaired") {
			t.Fatalf("verify -repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-config", st.cfg)
	archived, rows, _, _ := verifyLine(t, r.stdout)
	if r.code != 0 || archived != rows {
		t.Fatalf("verify after repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("%d archived, %d acknowledged", archived, len(a.ids))
	if archived < len(a.ids) {
		t.Fatalf("%d archived, but %d messages got a 250", archived, len(a.ids))
	}

	all := searchAll(t, st, "kestrel")
	seen := map[string]int{}
	for _, id := range all {
		seen[id]++
	}
	for n, id := range a.ids {
		if seen[id] != 1 {
			t.Errorf("message %d (%s) got a 250 and is found %d times by search kestrel", n, id, seen[id])
		}
	}
	if len(all) != archived || len(seen) != archived {
		t.Errorf("search kestrel: %d hits (%d distinct), %d archived", len(all), len(seen), archived)
	}
	// A few messages by their own word: the first, the last, and one
	// numbered about where the kill came.
	var ns []int
	for n := range a.ids {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range []int{ns[0], ns[killAt-1], ns[len(ns)-1]} {
		if got := searchAll(t, st, "kestrel"+strconv.Itoa(n)); len(got) != 1 || got[0] != a.ids[n] {
			t.Errorf("search kestrel%d: %v, want [%s]", n, got, a.ids[n])
		}
	}

	// Rebuild of a lost catalog, killed once it has written rows.
	queries := []string{"kestrel", "grp3", "grp5 OR grp6", "subject:report -grp0", "kestrel" + strconv.Itoa(ns[1])}
	before := map[string][]string{}
	for _, q := range queries {
		before[q] = searchAll(t, st, q)
	}
	removeCatalog(t, st.dir)
	cmd := exec.Command(st.bin, "catalog", "rebuild", "-workers", "1", "-config", st.cfg)
	cmd.Dir = st.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progressLine := regexp.MustCompile(`^rebuild: ([1-9]\d*)/(\d+) messages`)
	sc := bufio.NewScanner(stderr)
	var done string
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if m := progressLine.FindStringSubmatch(sc.Text()); m != nil {
			done = m[1]
			break
		}
	}
	if done == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("rebuild showed no progress:\n%s", strings.Join(lines, "\n"))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedBySIGKILL(t, "rebuild", cmd.Wait())
	r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-config", st.cfg)
	if _, rows, _, orphans := verifyLine(t, r.stdout); orphans != 0 || rows >= archived {
		t.Fatalf("verify after a rebuild killed at %s done: exit %d, %d rows of %d, %d orphans\n%s%s",
			done, r.code, rows, archived, orphans, r.stdout, r.stderr)
	}
	r = runCLI(t, st.bin, st.dir, "catalog", "rebuild", "-config", st.cfg)
	if m := regexp.MustCompile(`(\d+) already indexed`).FindStringSubmatch(r.stdout); r.code != 0 || m == nil || m[1] == "0" {
		t.Fatalf("rebuild after the kill did not resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, st.bin, st.dir, "catalog", "verify", "-config", st.cfg); r.code != 0 {
		t.Fatalf("verify after the resumed rebuild: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, q := range queries {
		if got := searchAll(t, st, q); !slices.Equal(got, before[q]) {
			t.Errorf("search %q after the rebuild: %d hits %v\nbefore: %d hits %v", q, len(got), got, len(before[q]), before[q])
		}
	}
}

// removeCatalog deletes the SQLite catalog and its journal files.
func removeCatalog(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "catalog.db*"))
	if len(files) == 0 {
		t.Fatal("no catalog file to remove")
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// searchAll is searchIDs with the catalog's largest page (1,000).
func searchAll(t *testing.T, st setup, q string) []string {
	t.Helper()
	return searchIDs(t, st, q, "-limit", "1000")
}
