package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/export"
	"github.com/mailvault/mailvaultd/internal/app"
	"github.com/mailvault/mailvaultd/listing"
)

// cmdExport writes every archived message that matches QUERY (all of them
// for "") to FILE, an mbox or a zip by its extension, created new with mode
// 0600 and kept only if the export completed. Each message is one audit
// record (action export, with the query) written as it is released.
func cmdExport(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("export", stderr)
	outPath := fs.String("o", "", "write the export to FILE (.mbox or .zip), created new with mode 0600")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || *outPath == "" {
		fmt.Fprintln(stderr, "usage: mailvaultd export QUERY -o FILE.mbox|FILE.zip [-config FILE]")
		return exitUsage
	}
	query := pos[0]
	format, err := export.FormatOfFile(*outPath)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd export: -o %s: the name must end in .mbox or .zip\n", *outPath)
		return exitUsage
	}
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
	lister, closeLister, err := a.ExportLister(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd export: %v\n", err)
		return exitFail
	}
	defer closeLister()
	ids, err := export.Collect(ctx, lister, listing.Query{All: true, Q: query}, export.MaxMessages, nil)
	switch {
	case errors.Is(err, listing.ErrNoSearch):
		fmt.Fprintln(stderr, "mailvaultd export: search is not available: this vault has no catalog (export \"\" exports everything)")
		return exitFail
	case err != nil:
		fmt.Fprintf(stderr, "mailvaultd export: %v\n", err)
		return exitFail
	}
	out, err := openFileOutput(*outPath, false)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd export: %v\n", err)
		return exitFail
	}
	defer out.abort()
	audit, err := auditlog.Open(c.Retrieval.AuditLog)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd export: audit log: %v; nothing was decrypted\n", err)
		return exitFail
	}
	defer audit.Close()

	progress := newExportProgress(stderr, len(ids))
	ew := export.NewWriter(out, format)
	src := export.Source{Vault: a.Vault(), Keys: a.Keys()}
	var written int
	err = src.Each(ctx, ew, ids, nil, func(id string, n int64, err error) error {
		ev := cliEvent(id)
		ev.Action, ev.Query, ev.Bytes, ev.Outcome = access.ActionExport, query, n, access.OutcomeOK
		switch {
		case errors.Is(err, archive.ErrNotFound):
			ev.Outcome = access.OutcomeNotFound
		case err != nil:
			ev.Outcome = access.OutcomeError
		default:
			written++
		}
		progress(id, n, err)
		return audit.Record(ev)
	})
	if err == nil {
		err = ew.Close()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd export: %v; %s was not kept\n", err, *outPath)
		return exitFail
	}
	fmt.Fprintf(stdout, "exported %d messages to %s\n", written, *outPath)
	return exitOK
}

// newExportProgress reports each exported message: a progress bar on a
// terminal, a plain line per message otherwise (a log, a pipe).
func newExportProgress(stderr io.Writer, total int) func(id string, n int64, err error) {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("exporting"), progressbar.OptionShowCount(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
		return func(id string, n int64, err error) {
			if err != nil {
				bar.Clear()
				fmt.Fprintf(stderr, "%s: %v\n", id, err)
			}
			bar.Add(1)
		}
	}
	i := 0
	return func(id string, n int64, err error) {
		i++
		if err != nil {
			fmt.Fprintf(stderr, "%d/%d %s: %v\n", i, total, id, err)
			return
		}
		fmt.Fprintf(stderr, "%d/%d %s %d bytes\n", i, total, id, n)
	}
}
