package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/archive/s3store"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/pgpmime"
	"github.com/mailvault/mailvaultd/sealer"
	"github.com/mailvault/mailvaultd/sealer/awskms"
	"github.com/mailvault/mailvaultd/smtpd"
)

// openKMS opens the AWS KMS provider.
func openKMS(ctx context.Context, c *config.Config, log *slog.Logger) (sealer.KeyProvider, error) {
	k := c.Keys.AWSKMS
	p, err := awskms.New(ctx, awskms.Options{KeyID: k.KeyID, Region: k.Region, Endpoint: k.Endpoint, Logger: log})
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "keys.awskms", Reason: err.Error()}
	}
	return p, nil
}

// openS3 opens the S3 store.
func openS3(ctx context.Context, c *config.Config, log *slog.Logger) (*s3store.Store, error) {
	s := c.Archive.S3
	st, err := s3store.New(ctx, s3store.Options{
		Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region, Endpoint: s.Endpoint, PathStyle: s.PathStyle,
		SSE: s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, SSECKeyFile: s.SSECKeyFile,
		ObjectLockMode: s.ObjectLock.Mode, ObjectLockDays: s.ObjectLock.Days, Logger: log,
	})
	if err != nil {
		return nil, &config.Error{File: c.File, Key: "archive.s3", Reason: err.Error()}
	}
	return st, nil
}

// openPGP loads the recipient keyring when the policy asks for one; the
// returned value lets SIGHUP swap it.
type pgpKeys struct {
	p atomic.Pointer[pgpmime.Keyring]
}

func openPGP(c *config.Config, log *slog.Logger) (*smtpd.OpenPGP, *pgpKeys, error) {
	policy, err := pgpmime.ParsePolicy(c.OpenPGP.Policy)
	if err != nil {
		return nil, nil, &config.Error{File: c.File, Key: "openpgp.policy", Reason: err.Error()}
	}
	if policy == pgpmime.PolicyOff {
		return nil, nil, nil
	}
	keys := &pgpKeys{}
	if err := keys.load(c, log); err != nil {
		return nil, nil, err
	}
	return &smtpd.OpenPGP{Policy: policy, Keys: keys.p.Load, KeepSubject: c.OpenPGP.KeepSubject}, keys, nil
}

func (k *pgpKeys) load(c *config.Config, log *slog.Logger) error {
	kr, err := pgpmime.LoadKeyring(c.OpenPGP.Keyring, c.OpenPGP.Fingerprints, time.Now(), log)
	if err != nil {
		return &config.Error{File: c.File, Key: "openpgp.keyring", Reason: err.Error()}
	}
	k.p.Store(kr)
	log.Info("openpgp keyring loaded", "keys", kr.Len(), "addresses", kr.Addresses())
	return nil
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
	if c.Archive.Backend != "s3" {
		fmt.Fprintln(stderr, "mailvaultd hold: legal holds need archive.backend: s3 on a bucket with Object Lock")
		return exitFail
	}
	id := pos[0]
	if !archive.ValidID(id) {
		fmt.Fprintf(stderr, "mailvaultd hold: %q is not an archive id\n", id)
		return exitFail
	}
	ctx := context.Background()
	e, err := openEnv(ctx, c, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return configErr(stderr, err)
	}
	if _, err := e.vault.Head(ctx, id); err != nil {
		if errors.Is(err, archive.ErrNotFound) {
			fmt.Fprintf(stderr, "mailvaultd hold: no message %s\n", id)
		} else {
			fmt.Fprintf(stderr, "mailvaultd hold: %v\n", err)
		}
		return exitFail
	}
	on := pos[1] == "on"
	for _, key := range archive.MessageKeys(id) {
		if err := e.s3.SetLegalHold(ctx, key, on); err != nil {
			fmt.Fprintf(stderr, "mailvaultd hold: %v\n", err)
			return exitFail
		}
	}
	fmt.Fprintf(stdout, "legal hold %s for %s\n", pos[1], id)
	return exitOK
}
