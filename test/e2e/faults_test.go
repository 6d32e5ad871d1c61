package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault test shape: faultMessages are sent evenly over faultWindow by
// faultSenders concurrent clients while the schedule below runs.
const (
	faultMessages = 500
	faultSenders  = 4
	faultWindow   = 60 * time.Second
	minioOutage   = 20 * time.Second
	faultKills    = 4
)

// faultEvent is one step of the fault schedule, at an offset from the start.
type faultEvent struct {
	at      time.Duration
	what    string // "kill", "minio-stop"
	restart time.Duration
}

// faultSchedule draws the schedule: MinIO stops once for minioOutage,
// starting 15-25s in; mailvaultd is SIGKILLed faultKills times, half before
// the outage and half after it, and restarted 0-2s later. Kills stay clear
// of the outage, so a restart never has to start against a stopped archive.
func faultSchedule(rng *rand.Rand) []faultEvent {
	outage := 15*time.Second + time.Duration(rng.Int64N(int64(10*time.Second)))
	ev := []faultEvent{{at: outage, what: "minio-stop", restart: minioOutage}}
	spans := [][2]time.Duration{
		{2 * time.Second, outage - 3*time.Second},
		{outage + minioOutage + 2*time.Second, faultWindow - 3*time.Second},
	}
	for k := 0; k < faultKills; k++ {
		sp := spans[k%2]
		ev = append(ev, faultEvent{
			at:      sp[0] + time.Duration(rng.Int64N(int64(sp[1]-sp[0]))),
			what:    "kill",
			restart: time.Duration(rng.Int64N(int64(2 * time.Second))),
		})
	}
	sort.Slice(ev, func(i, j int) bool { return ev[i].at < ev[j].at })
	// Two kills drawn close together: the second waits for the restart.
	for i := 1; i < len(ev); i++ {
		if prev := ev[i-1]; ev[i].at < prev.at+prev.restart+time.Second {
			ev[i].at = prev.at + prev.restart + time.Second
		}
	}
	return ev
}

// TestE2EFaults sends 500 messages through Postfix and mailvaultd while
// mailvaultd is SIGKILLed at random moments and restarted, and while MinIO is
// stopped for 20 seconds. At the end the Postfix queue must be empty, every
// message must be in every recipient's Maildir, and every message must be
// archived exactly once.
func TestE2EFaults(t *testing.T) {
	var (
		rcpts      = []string{"alice@" + mailDomain, "bob@" + mailDomain, "carol@" + mailDomain}
		sender     = "sender@" + mailDomain
		postmaster = "postmaster@" + mailDomain
	)
	s := newStack(t, append(append([]string{}, rcpts...), sender, postmaster))
	s.mail.noMail = []string{sender, postmaster}

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MAILVAULTD_E2E_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MAILVAULTD_E2E_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("fault schedule seed %d (MAILVAULTD_E2E_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x6d61696c7661756c))
	schedule := faultSchedule(rng)

	// The messages: unique Message-IDs and body markers; every fifth to all
	// three recipients, the others to one.
	run := runToken()
	type message struct {
		id   string
		to   []string
		body []byte
	}
	msgs := make([]message, faultMessages)
	want := map[string][]string{}
	for i := range msgs {
		to := []string{rcpts[i%3]}
		if i%5 == 0 {
			to = rcpts
		}
		id := fmt.Sprintf("fault-%03d.%s@%s", i, run, mailDomain)
		msgs[i] = message{id: id, to: to, body: faultMessage(rng, i, id, sender, to)}
		want[id] = to
	}

	// Senders, on their own goroutines; the faults run on this one.
	start := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		sendErr []string
	)
	for g := 0; g < faultSenders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(msgs); i += faultSenders {
				time.Sleep(time.Until(start.Add(faultWindow * time.Duration(i) / faultMessages)))
				if err := sendSMTP(s.pf.SMTP, sender, msgs[i].to, msgs[i].body, false); err != nil {
					mu.Lock()
					sendErr = append(sendErr, fmt.Sprintf("%s: %v", msgs[i].id, err))
					mu.Unlock()
				}
			}
		}(g)
	}
	kills := 0
	for _, ev := range schedule {
		time.Sleep(time.Until(start.Add(ev.at)))
		switch ev.what {
		case "kill":
			s.mv.Kill()
			kills++
			t.Logf("%5.1fs: mailvaultd SIGKILLed; restarting in %v", time.Since(start).Seconds(), ev.restart.Round(time.Millisecond))
			time.Sleep(ev.restart)
			s.mv.Start()
		case "minio-stop":
			s.minio.Stop()
			t.Logf("%5.1fs: MinIO stopped for %v", time.Since(start).Seconds(), ev.restart)
			time.Sleep(ev.restart)
			s.minio.Restart()
			t.Logf("%5.1fs: MinIO back", time.Since(start).Seconds())
		}
	}
	wg.Wait()
	t.Logf("%5.1fs: all %d messages handed to Postfix (%d send errors)", time.Since(start).Seconds(), len(msgs), len(sendErr))
	for _, e := range sendErr {
		t.Errorf("sending to Postfix's entry smtpd failed (it does not depend on mailvaultd): %s", e)
	}

	// Drain: retries come every 10s (queue_run_delay); flushing speeds it.
	s.pf.flush()
	s.mail.waitFor(t, want, 4*time.Minute)
	s.pf.waitQueueEmpty(2 * time.Minute)
	t.Logf("%5.1fs: every message delivered, queue empty", time.Since(start).Seconds())

	// Count.
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.id
	}
	log := waitArchiveLog(s.pf, ids, 15*time.Second)
	var (
		lost, dupDeliveries int
		acked               []string
		ackProblems         []string
	)
	ackOf := map[string]string{}
	for _, m := range msgs {
		for _, r := range m.to {
			switch n := len(s.mail.files(m.id, r)); {
			case n == 0:
				lost++
			case n > 1:
				dupDeliveries += n - 1
			}
		}
		ids := log.archiveIDs(m.id)
		if len(ids) != 1 {
			ackProblems = append(ackProblems, fmt.Sprintf("<%s>: acknowledged as %v", m.id, ids))
			continue
		}
		acked = append(acked, ids[0])
		ackOf[m.id] = ids[0]
	}
	count := s.mv.countArchived(acked)
	var once, missing, multi int
	for _, id := range acked {
		switch n := count.perID[id]; {
		case n == 1:
			once++
		case n == 0:
			missing++
			t.Errorf("archive id %s was acknowledged to Postfix but has no message object", id)
		default:
			multi++
			t.Errorf("archive id %s has %d message objects", id, n)
		}
	}
	deferred := countDeferred(s.pf.log())
	t.Logf("sent %d; lost %d; duplicate Maildir deliveries %d; archive: %d objects, %d messages archived exactly once, %d more than once, %d acknowledged but missing, %d objects never acknowledged; Postfix deferrals to mailvaultd: %d; mailvaultd kills: %d",
		len(msgs), lost, dupDeliveries, count.total, once, multi, missing, len(count.unknown), deferred, kills)

	if lost > 0 {
		t.Errorf("%d deliveries lost", lost)
	}
	for _, p := range ackProblems {
		t.Errorf("not archived exactly once according to mailvaultd's replies: %s", p)
	}
	if len(count.unknown) > 0 {
		listed, orphans := s.mv.classifyUnacknowledged(count.unknown)
		t.Errorf("%d objects under %s were never acknowledged to Postfix: %d in the archive's all/ listing (second copies a reader sees): %v; %d in no listing (left behind by a killed transaction, still stored ciphertext): %v",
			len(count.unknown), archiveMessagePrefix, len(listed), firstN(listed, 6), len(orphans), firstN(orphans, 6))
	}
	if count.total != len(msgs) {
		t.Errorf("the archive holds %d message objects for %d messages", count.total, len(msgs))
	}
	if deferred == 0 {
		t.Errorf("Postfix never deferred a message to mailvaultd: the faults did not bite, the test proved nothing")
	}
	if exits := s.mv.UnexpectedExits(); len(exits) > 0 {
		t.Errorf("mailvaultd exited on its own: %v", exits)
	}
	if dupDeliveries > 0 {
		// At-least-once: a kill after the next hop took the message but
		// before mailvaultd's 250 reached Postfix makes Postfix send it
		// again; the archive stays single, the Maildir gets two.
		t.Logf("note: %d duplicate Maildir deliveries (Postfix re-sent messages whose 250 was lost to a kill)", dupDeliveries)
	}

	// A sample comes back byte-exact.
	for _, i := range rng.Perm(len(msgs))[:5] {
		m := msgs[i]
		id, ok := ackOf[m.id]
		if !ok {
			continue
		}
		files := s.mail.files(m.id, m.to[0])
		handed, err := stripTrace(readFile(t, files[0]), 1)
		if err != nil {
			t.Errorf("%s: %v", files[0], err)
			continue
		}
		if asSent, _ := stripTrace(readFile(t, files[0]), 2); diffBytes("delivered vs sent", asSent, m.body) != nil {
			t.Errorf("<%s>: %v", m.id, diffBytes("delivered vs sent", asSent, m.body))
		}
		back, err := s.mv.Get(id, filepath.Join(s.dir, "get-"+id+".eml"))
		if err != nil {
			t.Error(err)
			continue
		}
		if err := diffBytes("mailvaultd get "+id, back, handed); err != nil {
			t.Error(err)
		}
	}
}

// faultMessage is message i: a few KB of text with a marker line.
func faultMessage(rng *rand.Rand, i int, id, from string, to []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: %s\r\nSubject: fault test %d\r\nDate: %s\r\nMessage-ID: <%s>\r\n\r\n",
		from, "<"+strings.Join(to, ">, <")+">", i, time.Now().Format(time.RFC1123Z), id)
	fmt.Fprintf(&b, "marker: %s\r\n", id)
	const words = "mail vault archive postfix filter queue deliver encrypt seal retry "
	lines := 20 + rng.IntN(200)
	for l := 0; l < lines; l++ {
		for w := 0; w < 10; w++ {
			f := strings.Fields(words)
			b.WriteString(f[rng.IntN(len(f))])
			b.WriteByte(' ')
		}
		if l%37 == 0 {
			b.WriteString("\r\n.a line that needs dot-stuffing")
		}
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// waitArchiveLog parses the maillog once it shows an archive id for every
// one of messageIDs (postlogd writes asynchronously), or after limit.
func waitArchiveLog(p *postfix, messageIDs []string, limit time.Duration) *archiveLog {
	deadline := time.Now().Add(limit)
	for {
		l := parseArchiveLog(p.log())
		all := true
		for _, id := range messageIDs {
			if len(l.archiveIDs(id)) == 0 {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) {
			return l
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var scanDeferredRE = regexp.MustCompile(`postfix/scan/smtp\[\d+\]: [0-9A-Za-z]+: to=<[^>]*>, .*status=deferred`)

// countDeferred counts deliveries to mailvaultd that Postfix deferred.
func countDeferred(log string) int {
	return len(scanDeferredRE.FindAllStringIndex(log, -1))
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
