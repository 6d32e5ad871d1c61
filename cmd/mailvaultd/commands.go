package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osuser "os/user"
	"strings"
	"time"

	"github.com/mailvault/mailvaultd/access"
	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/auditlog"
	"github.com/mailvault/mailvaultd/internal/app"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/internal/version"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/usersfile"
)

func cmdVersion(stdout io.Writer) int {
	fmt.Fprintf(stdout, "mailvaultd %s\n", version.Version)
	return exitOK
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("check-config", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return exitUsage
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "mailvaultd check-config: -config FILE is required")
		return exitUsage
	}
	c, err := config.Load(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	if err := app.CheckKeys(c); err != nil {
		return configErr(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
	return exitOK
}

func cmdKeys(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("keys", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || !oneOf(pos[0], "init", "rotate") {
		fmt.Fprintln(stderr, "usage: mailvaultd keys init|rotate [-config FILE]")
		return exitUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	path := c.Keys.Local.Keyring
	switch pos[0] {
	case "init":
		if err := app.InitKeyring(context.Background(), c); err != nil {
			fmt.Fprintf(stderr, "mailvaultd keys init: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "created keyring %s\n", path)
	case "rotate":
		v, err := sealer.RotateKeyring(path)
		if err != nil {
			fmt.Fprintf(stderr, "mailvaultd keys rotate: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "keyring %s: new messages now use master key version %d; reload or restart the daemon (SIGHUP)\n", path, v)
	}
	return exitOK
}

func cmdGet(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("get", stderr)
	outPath := fs.String("o", "", "write the message to FILE, created new with mode 0600, instead of standard output")
	replace := fs.Bool("f", false, "with -o: replace FILE if it exists (a symbolic link there is replaced, never followed)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || (*replace && *outPath == "") {
		fmt.Fprintln(stderr, "usage: mailvaultd get ID [-o FILE [-f]] [-config FILE]")
		return exitUsage
	}
	id := pos[0]
	if !archive.ValidID(id) {
		fmt.Fprintf(stderr, "mailvaultd get: %q is not an archive id\n", id)
		return exitFail
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

	// What is about to be read, from the metadata: the audit record says
	// it before a byte is decrypted.
	size, err := a.MessageSize(ctx, id)
	notFound := errors.Is(err, archive.ErrNotFound)
	if err != nil && !notFound {
		fmt.Fprintf(stderr, "mailvaultd get %s: %v\n", id, err)
		return exitFail
	}
	// The output next: a refused -o FILE reads nothing, so records nothing.
	var out output = streamOutput{stdout}
	if *outPath != "" && !notFound {
		f, err := openFileOutput(*outPath, *replace)
		if err != nil {
			fmt.Fprintf(stderr, "mailvaultd get: %v\n", err)
			return exitFail
		}
		out = f
	}
	defer out.abort()
	audit, err := auditlog.Open(c.Retrieval.AuditLog)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd get: audit log: %v; nothing was decrypted\n", err)
		return exitFail
	}
	defer audit.Close()
	ev := cliEvent(id)
	ev.Bytes, ev.Outcome = size, access.OutcomeOK
	if notFound {
		ev.Bytes, ev.Outcome = 0, access.OutcomeNotFound
	}
	if err := audit.Record(ev); err != nil {
		fmt.Fprintf(stderr, "mailvaultd get: audit log: %v; nothing was decrypted\n", err)
		return exitFail
	}
	if notFound {
		fmt.Fprintf(stderr, "mailvaultd get: no message %s\n", id)
		return exitFail
	}

	n, err := a.ReadMessage(ctx, id, out)
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		// The first record announced a whole message; this one says how
		// much of it was released before the read broke off.
		ev = cliEvent(id)
		ev.Bytes, ev.Outcome = n, access.OutcomeError
		if aerr := audit.Record(ev); aerr != nil {
			fmt.Fprintf(stderr, "mailvaultd get: audit log: %v\n", aerr)
		}
		fmt.Fprintf(stderr, "mailvaultd get %s: %v\n", id, err)
		return exitFail
	}
	return exitOK
}

// cliEvent is the audit record of a read by the command line; the user is
// the operating-system account that ran it.
func cliEvent(id string) access.Event {
	user := "cli"
	if u, err := osuser.Current(); err == nil {
		user = "cli:" + u.Username
	}
	return access.Event{Time: time.Now().UTC(), User: user, Role: access.RoleAuditor,
		Action: access.ActionRaw, MessageID: id, Remote: "local"}
}

// mailboxFlags collects repeated -mailbox flags.
type mailboxFlags []string

func (m *mailboxFlags) String() string     { return strings.Join(*m, ",") }
func (m *mailboxFlags) Set(v string) error { *m = append(*m, v); return nil }

func cmdUsers(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("users", stderr)
	auditor := fs.Bool("auditor", false, "the user may read every message")
	var mailboxes mailboxFlags
	fs.Var(&mailboxes, "mailbox", "an address whose mail the user may read (repeatable)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	const usage = "usage: mailvaultd users add NAME -mailbox ADDR [-mailbox ADDR...] [-auditor] | list | remove NAME [-config FILE]"
	if len(pos) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	path := c.Retrieval.UsersFile
	switch {
	case pos[0] == "add" && len(pos) == 2:
		role := access.RoleReader
		if *auditor {
			role = access.RoleAuditor
		} else if len(mailboxes) == 0 {
			fmt.Fprintln(stderr, "mailvaultd users add: a reader needs at least one -mailbox (or -auditor)")
			return exitUsage
		}
		token, err := usersfile.Add(path, pos[1], role, mailboxes)
		if err != nil {
			fmt.Fprintf(stderr, "mailvaultd users add: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "added %s %q to %s; reload the daemon (SIGHUP) to use it.\n", role, pos[1], path)
		fmt.Fprintln(stdout, "Its token is shown once, on the next line; only its SHA-256 is stored:")
		fmt.Fprintln(stdout, token)
	case pos[0] == "list" && len(pos) == 1:
		users, err := usersfile.List(path)
		if err != nil {
			fmt.Fprintf(stderr, "mailvaultd users list: %v\n", err)
			return exitFail
		}
		for _, u := range users {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", u.Name, u.Role, strings.Join(u.Mailboxes, ","))
		}
	case pos[0] == "remove" && len(pos) == 2:
		if err := usersfile.Remove(path, pos[1]); err != nil {
			fmt.Fprintf(stderr, "mailvaultd users remove: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "removed %q from %s\n", pos[1], path)
	default:
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	return exitOK
}

func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: mailvaultd audit verify FILE")
		return exitUsage
	}
	f, err := os.Open(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd audit verify: %v\n", err)
		return exitFail
	}
	defer f.Close()
	n, err := auditlog.Verify(f)
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd audit verify: %s: %v\n", args[1], err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: %d lines, chain intact\n", args[1], n)
	return exitOK
}

func cmdHold(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := commandFlags("hold", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 2 || !oneOf(pos[1], "on", "off") {
		fmt.Fprintln(stderr, "usage: mailvaultd hold ID on|off [-config FILE]")
		return exitUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return configErr(stderr, err)
	}
	if err := app.LegalHoldsConfigured(c); err != nil {
		fmt.Fprintf(stderr, "mailvaultd hold: %v\n", err)
		return exitFail
	}
	id := pos[0]
	if !archive.ValidID(id) {
		fmt.Fprintf(stderr, "mailvaultd hold: %q is not an archive id\n", id)
		return exitFail
	}
	ctx := context.Background()
	a, err := app.Open(ctx, c, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return configErr(stderr, err)
	}
	defer a.Close()
	holds, err := a.LegalHolds()
	if err != nil {
		fmt.Fprintf(stderr, "mailvaultd hold: %v\n", err)
		return exitFail
	}
	if err := holds.SetLegalHold(ctx, id, pos[1] == "on"); err != nil {
		if errors.Is(err, archive.ErrNotFound) {
			fmt.Fprintf(stderr, "mailvaultd hold: no message %s\n", id)
		} else {
			fmt.Fprintf(stderr, "mailvaultd hold: %v\n", err)
		}
		return exitFail
	}
	fmt.Fprintf(stdout, "legal hold %s for %s\n", pos[1], id)
	return exitOK
}
