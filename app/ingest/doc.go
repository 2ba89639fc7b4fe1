// Package ingest is the telemetry ingest: gateways post batches of vehicle
// readings to POST /ingest/v1/signals; each signal is validated alone, the
// accepted ones are committed (history, latest value per vehicle and key,
// vehicle-event outbox) before the answer is sent.
//
// Speed comes from doing per-signal work in Go without allocation (a
// hand-written decoder, cached VIN lookups, the static catalog) and
// set-based work in PostgreSQL: one binary COPY into a temporary staging
// table and a few INSERT ... SELECT statements per batch.
//
// The package also serves the manufacturer's master-data API
// (/ingest/v1/vehicles/..., /ingest/v1/master-data, masterdata_http.go):
// a credential of its own (master-data clients, cdm_ tokens) keeps the
// vehicle registry, connected-service subscriptions and account mappings
// current; a gateway's token does not reach it, nor its token the readings.
package ingest
