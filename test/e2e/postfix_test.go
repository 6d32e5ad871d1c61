package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvaultd/internal/testkit"
)

// mailDomain is the one domain the test Postfix delivers locally, into
// Maildirs under $B/mail (virtual mailboxes owned by uid/gid 5000).
const mailDomain = "example.test"

// Ports the shipped snippets name; the harness moves them to free ones.
const (
	snippetFilterAddr   = "[127.0.0.1]:10025"
	snippetReinjectAddr = "127.0.0.1:10026"
	snippetMilterAddr   = "inet:127.0.0.1:10027"
)

// milterSnippet is the commented milter alternative of
// configs/postfix-main.cf.snippet (its "#milter: " lines), uncommented.
func milterSnippet(t testing.TB) map[string]string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(repoFile(t, "configs/postfix-main.cf.snippet"), "\n") {
		if rest, ok := strings.CutPrefix(l, "#milter: "); ok {
			lines = append(lines, rest)
		}
	}
	c := parsePostconf(t, strings.Join(lines, "\n"))
	if len(c.keys) == 0 {
		t.Fatal("e2e: configs/postfix-main.cf.snippet has no #milter: lines")
	}
	out := map[string]string{}
	for _, k := range c.keys {
		out[k] = c.vals[k]
	}
	return out
}

// postfix is one Postfix instance running from a temporary directory ($B in
// test-env/postfix-notes.md), listening on loopback ports only.
type postfix struct {
	t        testing.TB
	dir      string // $B
	confDir  string // $B/etc, for postfix -c and postqueue -c
	SMTP     string // the entry smtpd, where mail is sent
	Reinject string // the re-injection smtpd (mailvaultd's forward.next_hop)
	Maillog  string
	boxes    map[string]string // address -> Maildir path
}

type postfixConfig struct {
	// filter is mailvaultd's listen address (host:port), put in place of
	// the snippet's; "" runs Postfix without a content filter.
	filter string
	// mailboxes are the addresses (at mailDomain) that get a Maildir.
	mailboxes []string
	// milter, when set, is mailvaultd's milter.listen (host:port): Postfix
	// runs it before queue with the snippet's commented milter settings,
	// and without the content filter.
	milter string
}

// startPostfix lays out and starts a Postfix instance under dir (which must
// be traversable by the postfix user) with main.cf and master.cf built from
// postfix-notes.md's recipe and the shipped configs/postfix-*.cf.snippet. It
// is stopped when the test ends.
func startPostfix(t testing.TB, dir string, cfg postfixConfig) *postfix {
	t.Helper()
	p := &postfix{
		t:        t,
		dir:      dir,
		confDir:  filepath.Join(dir, "etc"),
		SMTP:     testkit.FreeAddr(t),
		Reinject: testkit.FreeAddr(t),
		Maillog:  filepath.Join(dir, "log", "maillog"),
		boxes:    map[string]string{},
	}
	for _, d := range []string{"etc", "spool", "data", "log", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pfUID, pfGID := lookupIDs(t, "postfix", "postfix")
	mustChown(t, filepath.Join(dir, "spool"), 0, 0) // Postfix insists
	mustChown(t, filepath.Join(dir, "data"), pfUID, pfGID)
	mustChown(t, filepath.Join(dir, "mail"), 5000, 5000)

	var vmailbox strings.Builder
	for _, addr := range cfg.mailboxes {
		if !strings.HasSuffix(addr, "@"+mailDomain) {
			t.Fatalf("e2e: mailbox %q is not at %s", addr, mailDomain)
		}
		name := maildirName(addr)
		fmt.Fprintf(&vmailbox, "%s\t%s/\n", addr, name)
		p.boxes[addr] = filepath.Join(dir, "mail", name)
	}
	writeFile(t, filepath.Join(p.confDir, "vmailbox"), vmailbox.String())
	writeFile(t, filepath.Join(p.confDir, "main.cf"), p.mainCF(cfg))
	writeFile(t, filepath.Join(p.confDir, "master.cf"), p.masterCF())

	if out, err := p.command("postfix", "-c", p.confDir, "check"); err != nil {
		t.Fatalf("e2e: postfix check: %v\n%s", err, out)
	} else if len(strings.TrimSpace(out)) > 0 {
		t.Logf("postfix check: %s", out)
	}
	t.Cleanup(p.stop)
	if out, err := p.command("postfix", "-c", p.confDir, "start"); err != nil {
		t.Fatalf("e2e: postfix start: %v\n%s\n%s", err, out, p.log())
	}
	for _, addr := range []string{p.SMTP, p.Reinject} {
		if err := waitGreeting(addr, 30*time.Second); err != nil {
			t.Fatalf("e2e: postfix smtpd on %s: %v\n--- maillog ---\n%s", addr, err, p.log())
		}
	}
	return p
}

// mainCF is postfix-notes.md's main.cf, then the shipped snippet (its
// content filter pointed at cfg.filter), then the test's fast retries.
func (p *postfix) mainCF(cfg postfixConfig) string {
	t := p.t
	c := &postconf{}
	for _, kv := range [][2]string{
		{"compatibility_level", "3.6"},
		{"queue_directory", filepath.Join(p.dir, "spool")},
		{"data_directory", filepath.Join(p.dir, "data")},
		{"mail_owner", "postfix"},
		{"setgid_group", "postdrop"},
		{"maillog_file", p.Maillog}, // no syslog here: postlogd writes it
		{"maillog_file_prefixes", "/var, /dev/stdout, /tmp, " + p.dir},
		{"myhostname", "mx." + mailDomain},
		{"mydomain", mailDomain},
		{"myorigin", "$mydomain"},
		{"inet_interfaces", "127.0.0.1"},
		{"inet_protocols", "ipv4"},
		{"mynetworks", "127.0.0.0/8"},
		{"mydestination", ""},
		{"smtp_dns_support_level", "disabled"}, // never resolve a name
		{"lmtp_dns_support_level", "disabled"},
		{"smtpd_peername_lookup", "no"},
		{"append_dot_mydomain", "no"},
		{"biff", "no"},
		{"alias_maps", ""},
		{"alias_database", ""},
		{"smtpd_relay_restrictions", "permit_mynetworks, reject_unauth_destination"},
		// Nothing here is for another domain; if something were, it
		// would stay queued for a port nobody listens on and the
		// "queue is empty" checks would catch it.
		{"relayhost", "[127.0.0.1]:" + portOf(t, testkit.FreeAddr(t))},
		{"virtual_mailbox_domains", mailDomain},
		{"virtual_mailbox_base", filepath.Join(p.dir, "mail")},
		{"virtual_mailbox_maps", "texthash:" + filepath.Join(p.confDir, "vmailbox")},
		{"virtual_uid_maps", "static:5000"},
		{"virtual_gid_maps", "static:5000"},
	} {
		c.set(kv[0], kv[1])
	}

	snippet := parsePostconf(t, repoFile(t, "configs/postfix-main.cf.snippet"))
	if _, ok := snippet.get("content_filter"); !ok {
		t.Fatal("e2e: configs/postfix-main.cf.snippet sets no content_filter")
	}
	for _, k := range snippet.keys {
		v := snippet.vals[k]
		if k == "content_filter" {
			if cfg.filter == "" || cfg.milter != "" {
				v = ""
			} else {
				host, port, _ := net.SplitHostPort(cfg.filter)
				v = mustReplace(t, "configs/postfix-main.cf.snippet", v, snippetFilterAddr, "["+host+"]:"+port)
			}
		}
		c.set(k, v)
	}

	if cfg.milter != "" {
		for k, v := range milterSnippet(t) {
			if k == "smtpd_milters" || k == "non_smtpd_milters" {
				v = mustReplace(t, "configs/postfix-main.cf.snippet", v, snippetMilterAddr, "inet:"+cfg.milter)
			}
			c.set(k, v)
		}
	}

	// Fast retries, so deferred mail comes back in seconds, not minutes.
	c.set("queue_run_delay", "10s")
	c.set("minimal_backoff_time", "10s")
	c.set("maximal_backoff_time", "60s")
	return c.String()
}

// masterCF is Debian's standard services (unchrooted: the temporary queue
// has no chroot set up), the entry smtpd, and the shipped snippet with the
// re-injection smtpd moved to its free port.
func (p *postfix) masterCF() string {
	t := p.t
	var b strings.Builder
	fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", p.SMTP)
	b.WriteString(testkit.PostfixServices)
	snippet := repoFile(t, "configs/postfix-master.cf.snippet")
	b.WriteString(mustReplace(t, "configs/postfix-master.cf.snippet", snippet, snippetReinjectAddr+" ", p.Reinject+" "))
	return b.String()
}

// stop stops Postfix (postfix stop), and kills its process group by the
// master's PID if it does not go.
func (p *postfix) stop() {
	pid := p.masterPID()
	out, err := p.command("postfix", "-c", p.confDir, "stop")
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Logf("e2e: postfix stop left master %d running (%v: %s); killing it", pid, err, out)
	_ = syscall.Kill(-pid, syscall.SIGKILL) // master runs setsid(): its group is its children
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func (p *postfix) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "spool", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (p *postfix) command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+p.confDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// queue returns `postqueue -p`'s listing.
func (p *postfix) queue() string {
	p.t.Helper()
	out, err := p.command("postqueue", "-c", p.confDir, "-p")
	if err != nil {
		p.t.Fatalf("e2e: postqueue -p: %v\n%s", err, out)
	}
	return out
}

// queueEmpty reports whether nothing is queued (active, incoming, deferred,
// hold).
func (p *postfix) queueEmpty() bool {
	return strings.Contains(p.queue(), "Mail queue is empty")
}

// flush asks Postfix to retry every deferred message now.
func (p *postfix) flush() {
	if out, err := p.command("postqueue", "-c", p.confDir, "-f"); err != nil {
		p.t.Logf("e2e: postqueue -f: %v: %s", err, out)
	}
}

// waitQueueEmpty polls until the queue is empty, flushing deferred mail now
// and then, and fails the test after limit.
func (p *postfix) waitQueueEmpty(limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	lastFlush := time.Now()
	for !p.queueEmpty() {
		if time.Now().After(deadline) {
			p.t.Fatalf("e2e: Postfix queue not empty after %v:\n%s", limit, tail([]byte(p.queue()), 4000))
		}
		if time.Since(lastFlush) > 5*time.Second {
			p.flush()
			lastFlush = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// log returns the maillog so far.
func (p *postfix) log() string {
	b, _ := os.ReadFile(p.Maillog)
	return string(b)
}

// maildir returns addr's Maildir.
func (p *postfix) maildir(addr string) string {
	p.t.Helper()
	d, ok := p.boxes[addr]
	if !ok {
		p.t.Fatalf("e2e: %s has no mailbox", addr)
	}
	return d
}

// delivered lists the files delivered into addr's Maildir, sorted.
func (p *postfix) delivered(addr string) []string {
	d := p.maildir(addr)
	var files []string
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(d, sub))
		for _, e := range ents {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(d, sub, e.Name()))
			}
		}
	}
	sort.Strings(files)
	return files
}

// maildirName is the Maildir directory of addr: its local part, hex-encoded
// when it is not plain ASCII.
func maildirName(addr string) string {
	local := addr[:strings.LastIndex(addr, "@")]
	for _, r := range local {
		if r > 0x7e || r < 0x21 || r == '/' {
			return fmt.Sprintf("u%x", local)
		}
	}
	return local
}

// waitGreeting polls addr until an SMTP server there sends its 220 greeting.
func waitGreeting(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		last = greet(addr)
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no SMTP greeting after %v: %v", limit, last)
}

func greet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return nil
}

// # main.cf handling

// postconf is an ordered main.cf: setting a key again replaces its value in
// place, so later layers override earlier ones without duplicate entries.
type postconf struct {
	keys []string
	vals map[string]string
}

func (c *postconf) set(k, v string) {
	if c.vals == nil {
		c.vals = map[string]string{}
	}
	if _, ok := c.vals[k]; !ok {
		c.keys = append(c.keys, k)
	}
	c.vals[k] = v
}

func (c *postconf) get(k string) (string, bool) {
	v, ok := c.vals[k]
	return v, ok
}

func (c *postconf) String() string {
	var b strings.Builder
	for _, k := range c.keys {
		fmt.Fprintf(&b, "%s = %s\n", k, c.vals[k])
	}
	return b.String()
}

// parsePostconf reads main.cf syntax: "key = value", comments, blank lines,
// and continuation lines that start with white space.
func parsePostconf(t testing.TB, text string) *postconf {
	t.Helper()
	c := &postconf{}
	var key, val string
	flush := func() {
		if key != "" {
			c.set(key, strings.TrimSpace(val))
		}
		key, val = "", ""
	}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if key == "" {
				t.Fatalf("e2e: main.cf continuation line without a parameter: %q", line)
			}
			val += " " + strings.TrimSpace(line)
		default:
			flush()
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("e2e: not a main.cf line: %q", line)
			}
			key, val = strings.TrimSpace(k), strings.TrimSpace(v)
		}
	}
	flush()
	return c
}

// # Small things

func portOf(t testing.TB, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func mustReplace(t testing.TB, file, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("e2e: %s no longer contains %q, which the harness moves to a free port", file, old)
	}
	return strings.ReplaceAll(s, old, new)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustChown(t testing.TB, path string, uid, gid int) {
	t.Helper()
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func lookupIDs(t testing.TB, userName, groupName string) (int, int) {
	t.Helper()
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatalf("e2e: user %s (from the postfix package): %v", userName, err)
	}
	g, err := user.LookupGroup(groupName)
	if err != nil {
		t.Fatalf("e2e: group %s: %v", groupName, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return uid, gid
}
