package app

import (
	"context"

	"github.com/mailvault/mailvaultd/archivelist"
	"github.com/mailvault/mailvaultd/retrieval"
	"github.com/mailvault/mailvaultd/sealed"
)

// ExportLister is the Lister the command line's export pages through.
//
// Merge note: on this branch it is the archive's own index, which refuses
// every search (listing.ErrNoSearch); once the catalog is wired (package
// search) it must be the catalog's Lister, opened for a command as the
// daemon opens it.
func (a *App) ExportLister(ctx context.Context) (retrieval.Lister, error) {
	return archivelist.New(a.vault, func(ctx context.Context, id string) (*sealed.Manifest, error) {
		return sealed.OpenManifest(ctx, a.vault, a.keys, id)
	}, a.log), nil
}
