package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"cardata/app/db"
)

// CeilingWrite is the ingest benchmark's database ceiling (app/bench): it
// generates the rows of at least n signals of f's next vehicles directly
// and writes them with the ingest's own COPY and latest-value upsert
// (UpsertLatestSQL) into table, a copy of vehicle_latest_values, in one
// committed transaction, without HTTP, decoding, validation, history or
// events. buf is reused from call to call; it returns it and the number of
// signals written.
func (s *Service) CeilingWrite(ctx context.Context, table string, f *Fleet, n int, buf []byte) ([]byte, int, error) {
	rows := f.appendRows(nil, n, time.Now(), s.Catalog)
	prepareRows(rows)
	buf = encodeCopy(buf, rows)
	apply := fmt.Sprintf(UpsertLatestSQL, table, "") + ";\nCOMMIT"
	err := db.WithPgx(ctx, s.DB, func(c *pgx.Conn) error { return copyAndApply(ctx, c.PgConn(), buf, apply) })
	return buf, len(rows), err
}
