package sqlstore

import (
	"testing"

	"github.com/usine-project/usine/internal/store/storetest"
)

func TestGrantsSQLite(t *testing.T) {
	t.Parallel()
	storetest.RunGrants(t, opener(func(t *testing.T) string { return sqliteURL(t) }))
}

func TestGrantsPostgres(t *testing.T) {
	base := postgresURL(t)
	t.Parallel()
	storetest.RunGrants(t, opener(func(t *testing.T) string { return freshPostgres(t, base) }))
}
