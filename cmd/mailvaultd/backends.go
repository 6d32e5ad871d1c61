package main

import (
	"context"
	"fmt"

	"github.com/mailvault/mailvaultd/archive"
	"github.com/mailvault/mailvaultd/internal/config"
	"github.com/mailvault/mailvaultd/sealer"
)

// openKMS opens the AWS KMS provider.
func openKMS(ctx context.Context, c *config.Config) (sealer.KeyProvider, error) {
	return nil, &config.Error{File: c.File, Key: "keys.provider", Reason: fmt.Sprintf("awskms is not built yet")}
}

// openS3 opens the S3 store.
func openS3(ctx context.Context, c *config.Config) (archive.Store, error) {
	return nil, &config.Error{File: c.File, Key: "archive.backend", Reason: fmt.Sprintf("s3 is not built yet")}
}
