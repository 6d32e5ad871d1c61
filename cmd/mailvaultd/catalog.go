package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/internal/app"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/search"
	"github.com/mailvault/mailvaultd/searchquery"
)

// cmdSearch is `search QUERY`: the auditor's view of the catalog (every
// message), audited as one search line with the query text before any
// summary is opened.
func cmdSearch(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("search", stderr)
	limit := fs.Int("limit", 50, "show at most N messages, newest first")
	asJSON := fs.Bool("json", false, "one JSON object per message instead of a table")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" || *limit <= 0 {
		fmt.Fprintln(stderr, "usage: mailvaultd search QUERY [-limit N] [-json] [-config FILE]")
		return exitUsage
	}
	q := pos[0]
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, c, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return configErr(stderr, err)
	}
	defer a.Close()
	audit, err := auditlog.Open(c.Retrieval.AuditLog)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd search: audit log: %v; nothing was searched\n", err)
		return exitFail
	}
	defer audit.Close()
	ev := cliEvent("")
	ev.Action, ev.Query, ev.Outcome = access.ActionSearch, q, access.OutcomeOK
	_, perr := searchquery.Parse(q, time.Now())
	if perr != nil {
		ev.Outcome = access.OutcomeBadRequest
	}
	if err := audit.Record(ev); err != nil {
		fmt.Fprintf(stderr, "mailvaultd search: audit log: %v; nothing was searched\n", err)
		return exitFail
	}
	if perr != nil {
		fmt.Fprintf(stderr, "mailvaultd search: %v\n", perr)
		return exitFail
	}
	cat, err := a.OpenCatalog(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd search: %v\n", err)
		return exitFail
	}
	defer cat.Close()
	l := &search.Lister{Catalog: cat, Keys: a.CatalogKeys()}
	page, err := l.List(ctx, listing.Query{All: true, Q: q, Limit: *limit})
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd search: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, m := range page.Messages {
			if err := enc.Encode(searchHit{ID: m.ID, ReceivedAt: m.ReceivedAt, From: m.From, To: m.To, Size: m.Size,
				Subject: m.Header.Subject, HeaderFrom: m.Header.From}); err != nil {
				return exitFail
			}
		}
	} else {
		for _, m := range page.Messages {
			fmt.Fprintf(stdout, "%s\t%s\t%d\t%s\t%s\n", m.ID, m.ReceivedAt.UTC().Format(time.RFC3339), m.Size,
				oneLine(m.Header.From), oneLine(m.Header.Subject))
		}
	}
	more := ""
	if page.CountCapped {
		more = " or more"
	}
	fmt.Fprintf(stderr, "%d of %d%s matching messages shown\n", len(page.Messages), page.Count, more)
	return exitOK
}

// searchHit is one line of `search -json`.
type searchHit struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	Size       int64     `json:"size"`
	HeaderFrom string    `json:"header_from,omitempty"`
	Subject    string    `json:"subject,omitempty"`
}

// oneLine keeps a header value on its table line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// cmdCatalog is `catalog rebuild|verify`.
func cmdCatalog(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("catalog", stderr)
	workers := fs.Int("workers", 4, "rebuild: messages opened at once")
	force := fs.Bool("force", false, "rebuild: re-index messages that already have a row")
	repair := fs.Bool("repair", false, "verify: index missing messages and delete rows without a message")
	pos, err := parseArgs(fs, args)
	const usage = "usage: mailvaultd catalog rebuild [-workers N] [-force] | verify [-repair] [-config FILE]"
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || !oneOf(pos[0], "rebuild", "verify") || *workers <= 0 ||
		(pos[0] == "rebuild" && setFlag(fs, "repair")) || (pos[0] == "verify" && (setFlag(fs, "force") || setFlag(fs, "workers"))) {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.Open(ctx, c, log)
	if err != nil {
		return configErr(stderr, err)
	}
	defer a.Close()
	cat, err := a.OpenCatalog(ctx)
	if err != nil {
		return configErr(stderr, err)
	}
	defer cat.Close()
	prog := newProgress(stderr, pos[0])
	opts := a.CatalogFields()
	opts.Workers, opts.Force, opts.Progress = *workers, *force, prog.update
	name := "mailvaultd catalog " + pos[0]
	switch pos[0] {
	case "rebuild":
		st, err := search.Rebuild(ctx, a.Vault(), a.Keys(), cat, a.CatalogKeys(), opts)
		prog.finish()
		fmt.Fprintf(stdout, "%d archived, %d indexed, %d already indexed, %d failed\n", st.Archived, st.Indexed, st.Skipped, len(st.Failed))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			if errors.Is(err, context.Canceled) {
				fmt.Fprintf(stderr, "%s: run it again to resume\n", name)
			}
			return exitFail
		}
	case "verify":
		rep, err := search.Verify(ctx, a.Vault(), a.Keys(), cat, a.CatalogKeys(), *repair, opts)
		prog.finish()
		for _, id := range rep.Missing {
			fmt.Fprintf(stdout, "missing\t%s\n", id)
		}
		for _, id := range rep.Orphans {
			fmt.Fprintf(stdout, "orphan\t%s\n", id)
		}
		fmt.Fprintf(stdout, "%d archived, %d rows, %d missing, %d orphans", rep.Archived, rep.Rows, len(rep.Missing), len(rep.Orphans))
		if rep.Repaired {
			fmt.Fprint(stdout, ", repaired")
		}
		fmt.Fprintln(stdout)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return exitFail
		}
		if !rep.OK() && !rep.Repaired {
			return exitFail
		}
	}
	return exitOK
}

// setFlag says whether the command line set flag name.
func setFlag(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// progress shows a Rebuild's or a repair's progress on stderr: a bar on a
// terminal, else a plain line every few seconds (a log or a pipe).
type progress struct {
	w     io.Writer
	what  string
	bar   *progressbar.ProgressBar
	last  time.Time
	every time.Duration
	p     search.Progress
}

func newProgress(stderr io.Writer, what string) *progress {
	pr := &progress{w: stderr, what: what, every: 5 * time.Second}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pr.bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish())
	}
	return pr
}

func (pr *progress) update(p search.Progress) {
	pr.p = p
	if pr.bar != nil {
		pr.bar.ChangeMax(p.Total)
		pr.bar.Set(p.Done)
		return
	}
	if now := time.Now(); now.Sub(pr.last) >= pr.every {
		pr.last = now
		pr.line()
	}
}

func (pr *progress) line() {
	eta := "unknown"
	if pr.p.ETA > 0 {
		eta = pr.p.ETA.Round(time.Second).String()
	}
	fmt.Fprintf(pr.w, "%s: %d/%d messages, %.1f/s, ETA %s\n", pr.what, pr.p.Done, pr.p.Total, pr.p.Rate, eta)
}

func (pr *progress) finish() {
	if pr.bar != nil {
		pr.bar.Finish()
		return
	}
	if pr.p.Total > 0 {
		pr.line()
	}
}
