package smtpd

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/ingest"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/search"
)

// catalogRoundMessages is how many messages one on or off round delivers.
const catalogRoundMessages = 400

// BenchmarkCatalogOnOff measures store-only delivery (fs archive, local
// keyring, 8 concurrent SMTP sessions, 10 KB text messages) with the
// catalog off and on (SQLite, every field group indexed), the two
// alternating in one run so that both see the same machine. Each
// iteration is one round of each; it reports the median messages a second
// of each and the median of the per-round ratios on/off (target ≥ 0.9).
//
//	go test -run '^$' -bench CatalogOnOff -benchtime 7x ./smtpd/
func BenchmarkCatalogOnOff(b *testing.B) {
	off := newEnv(b, envOpts{storeOnly: true})
	on := newEnv(b, envOpts{storeOnly: true, indexer: func(dir string, kr *sealer.Keyring) ingest.Indexer {
		cat, err := catalog.Open(context.Background(), catalog.Config{Path: filepath.Join(dir, "catalog.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cat.Close() })
		secret := kr.IndexKey()
		defer clear(secret)
		keys, err := search.NewKeys(secret)
		if err != nil {
			b.Fatal(err)
		}
		return search.NewIndexer(search.IndexerConfig{Catalog: cat, Keys: keys, Fields: blind.AllFields()})
	}})
	var seq atomic.Int64 // every message differs: a duplicate is neither archived nor indexed again
	var rateOff, rateOn, ratio []float64
	for b.Loop() {
		r0 := deliverRound(b, off.addr, &seq)
		r1 := deliverRound(b, on.addr, &seq)
		rateOff, rateOn, ratio = append(rateOff, r0), append(rateOn, r1), append(ratio, r1/r0)
	}
	b.ReportMetric(median(rateOff), "off-msg/s")
	b.ReportMetric(median(rateOn), "on-msg/s")
	b.ReportMetric(median(ratio), "on/off")
}

// deliverRound sends catalogRoundMessages messages over 8 sessions and
// returns messages a second.
func deliverRound(b *testing.B, addr string, seq *atomic.Int64) float64 {
	const sessions = 8
	var left atomic.Int64
	left.Store(catalogRoundMessages)
	clients := make([]*smtp.Client, sessions)
	for i := range clients {
		c, err := smtp.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := sendText(c, textMessage(seq.Add(1), 10<<10)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return catalogRoundMessages / el.Seconds()
}

// sendText delivers one message on an open session and checks its 250.
func sendText(c *smtp.Client, msg string) error {
	if err := c.Mail("a@example.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return err
	}
	if !strings.Contains(resp.StatusText, "archived as") {
		return fmt.Errorf("reply %q", resp.StatusText)
	}
	return nil
}

// benchWords is the body's vocabulary: words drawn in a skewed order, so
// the index sees common and rare words as mail has them.
var benchWords = strings.Fields("the of and to in a is that for it as was with be by on not he this are or his from at which " +
	"but have an they you were her she there been one all we their has would when if so no will more can said what some " +
	"invoice quarterly report meeting budget contract draft review schedule project deadline customer shipment payment " +
	"approval agenda minutes proposal estimate delivery warehouse audit compliance retention archive")

// textMessage is a text/plain message of about size bytes, unique by n.
func textMessage(n int64, size int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: Alice Example <alice%d@example.test>\r\nTo: bob%d@example.test\r\nSubject: report %d on the %s\r\n"+
		"Message-ID: <%d@bench.example.test>\r\n\r\n", n%50, n%200, n, benchWords[n%int64(len(benchWords))], n)
	x := uint64(n)*2654435761 + 1
	col := 0
	for sb.Len() < size {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		// skewed: the product of two uniform draws favours small indexes
		i := int((x % uint64(len(benchWords))) * ((x >> 32) % uint64(len(benchWords))) / uint64(len(benchWords)))
		w := benchWords[i]
		if w == "archive" {
			w = fmt.Sprintf("ref%d", x%100000) // a rare word now and then
		}
		sb.WriteString(w)
		col += len(w) + 1
		if col > 70 {
			sb.WriteString("\r\n")
			col = 0
		} else {
			sb.WriteByte(' ')
		}
	}
	sb.WriteString("\r\n")
	return sb.String()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
