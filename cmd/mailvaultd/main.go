// Command mailvaultd is the mail encryption daemon: a Postfix content filter
// that archives every message encrypted and forwards it, and an HTTP service
// to read the archive back.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes. exitConfig (EX_CONFIG) tells systemd not to restart into the
// same broken configuration (RestartPreventExitStatus=78).
const (
	exitOK     = 0
	exitFail   = 1
	exitUsage  = 2
	exitConfig = 78
)

func usage() string {
	return `usage:
  mailvaultd serve [-config FILE]
  mailvaultd check-config -config FILE
  mailvaultd keys init|rotate [-config FILE]
  mailvaultd users add NAME -mailbox ADDR [-mailbox ADDR...] [-auditor] [-config FILE]
  mailvaultd users list|remove [NAME] [-config FILE]
  mailvaultd get ID [-o FILE] [-config FILE]
  mailvaultd hold ID on|off [-config FILE]
  mailvaultd audit verify FILE
  mailvaultd version
`
}

func run(args []string, stdout, stderr *os.File) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stderr)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "keys":
		return cmdKeys(rest, stdout, stderr)
	case "users":
		return cmdUsers(rest, stdout, stderr)
	case "get":
		return cmdGet(rest, stdout, stderr)
	case "hold":
		return cmdHold(rest, stdout, stderr)
	case "audit":
		return cmdAudit(rest, stdout, stderr)
	case "version", "-version", "--version":
		return cmdVersion(stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage())
		return exitOK
	default:
		fmt.Fprintf(stderr, "mailvaultd: unknown command %q\n%s", cmd, usage())
		return exitUsage
	}
}
