package app

import (
	"context"

	"github.com/mailvault/mailvaultd/search"
)

// ExportLister is the Lister the command line's export pages through: the
// catalog's, opened for this command as the daemon opens it. The caller
// calls close when done.
func (a *App) ExportLister(ctx context.Context) (l *search.Lister, close func() error, err error) {
	cat, err := a.OpenCatalog(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &search.Lister{Catalog: cat, Keys: a.CatalogKeys(), Logger: a.log}, cat.Close, nil
}
