package catalog_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/catalog/catalogtest"
)

func openSQLite(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), catalog.Config{Backend: catalog.BackendSQLite, Path: filepath.Join(t.TempDir(), "catalog.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSQLite(t *testing.T) { catalogtest.Run(t, openSQLite) }
