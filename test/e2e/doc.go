// Package e2e holds mailvaultd's end-to-end tests. Mail is sent with swaks
// and a Go SMTP client into a real Postfix, run from a temporary
// configuration directory with mailvaultd as its after-queue content filter
// (the shipped configs/postfix-*.cf.snippet files, ports moved to free
// loopback ones), archived in a real MinIO, delivered into Maildirs and read
// back with `mailvaultd get`. The package also checks the shipped systemd
// unit and the configuration examples.
//
// The tests run with everything else (`go test ./...`); there is no build
// tag. They need root (Postfix insists on a root-owned queue, deliveries are
// made as uid 5000) and install what is missing themselves: Debian's postfix,
// swaks, gnupg and systemd packages, and MinIO through internal/miniotest.
// They never skip: when a component cannot be had, the test fails and says
// which. To run only these:
//
//	go test ./test/e2e/ -run 'E2E|Systemd|Configs|Postfix' -v
//
// Knobs, all optional:
//
//	MAILVAULTD_E2E_BIN=FILE  test this mailvaultd binary instead of building ./cmd/mailvaultd
//	MAILVAULTD_E2E_SEED=N    replay TestE2EFaults's fault schedule (the seed is logged)
//	MAILVAULTD_E2E_KEEP=1    keep the working directories (Postfix config, logs, Maildirs)
//
// When a test fails, its Postfix maillog, main.cf, master.cf and the
// mailvaultd log are copied to test/e2e/artifacts/TESTNAME/ (git-ignored).
//
// Nothing here is imported by the product; it is test support only.
package e2e
