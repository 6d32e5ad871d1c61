// Command mailvaultd is the mail encryption daemon: a Postfix content filter
// that archives every message encrypted and forwards it, and an HTTP service
// to read the archive back.
//
// This package owns the command line: the table of subcommands, their flags
// and output, exit codes and signals. It opens what a command needs through
// internal/app and decides nothing about mail or keys itself.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes. exitConfig (EX_CONFIG) tells systemd not to restart into the
// same broken configuration (RestartPreventExitStatus=78): only a problem
// that the configuration (or a file it names) must change to fix exits 78.
// exitTempFail (EX_TEMPFAIL) is a state of the machine that may pass (a
// listen address held by another process): systemd restarts into it.
const (
	exitOK       = 0
	exitFail     = 1
	exitUsage    = 2
	exitTempFail = 75
	exitConfig   = 78
)

// command is one subcommand: its name, other names it answers to, its
// synopsis lines (after "mailvaultd ") and what runs it.
type command struct {
	name    string
	aliases []string
	usage   []string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands is every subcommand, in the order usage lists them.
var commands = []command{
	{name: "serve", usage: []string{"serve [-config FILE]"},
		run: func(args []string, _, stderr io.Writer) int { return cmdServe(args, stderr) }},
	{name: "check-config", usage: []string{"check-config -config FILE"}, run: cmdCheckConfig},
	{name: "keys", usage: []string{"keys init|rotate [-config FILE]"}, run: cmdKeys},
	{name: "users", usage: []string{
		"users add NAME -mailbox ADDR [-mailbox ADDR...] [-auditor] [-config FILE]",
		"users list|remove [NAME] [-config FILE]",
	}, run: cmdUsers},
	{name: "get", usage: []string{"get ID [-o FILE [-f]] [-config FILE]"}, run: cmdGet},
	{name: "export", usage: []string{"export QUERY -o FILE.mbox|FILE.zip [-config FILE]"}, run: cmdExport},
	{name: "hold", usage: []string{"hold ID on|off [-config FILE]"}, run: cmdHold},
	{name: "search", usage: []string{"search QUERY [-limit N] [-json] [-config FILE]"}, run: cmdSearch},
	{name: "catalog", usage: []string{"catalog rebuild [-workers N] [-force] [-config FILE]",
		"catalog verify [-repair] [-config FILE]"}, run: cmdCatalog},
	{name: "audit", usage: []string{"audit verify FILE"}, run: cmdAudit},
	{name: "version", aliases: []string{"-version", "--version"}, usage: []string{"version"},
		run: func(_ []string, stdout, _ io.Writer) int { return cmdVersion(stdout) }},
}

// helpNames print the usage to standard output and succeed.
var helpNames = []string{"help", "-h", "-help", "--help"}

// usage is the synopsis of every command, from the table.
func usage() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands {
		for _, u := range c.usage {
			b.WriteString("  mailvaultd " + u + "\n")
		}
	}
	return b.String()
}

// lookup finds the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name || slices.Contains(c.aliases, name) {
			return c, true
		}
	}
	return command{}, false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	name, rest := args[0], args[1:]
	if slices.Contains(helpNames, name) {
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "mailvaultd: unknown command %q\n%s", name, usage())
		return exitUsage
	}
	return c.run(rest, stdout, stderr)
}
