-- +goose Up
-- Invoices claim ledger records by watermark instead of marking each row.
--
-- A claim (provider P, period, high_id W, ends_at E) covers P's records
-- with id <= W delivered before E: its quadrant Q. W is taken while no
-- transaction writing the ledger is in flight (see billing.watermark), so
-- no record with id <= W can appear later. A claim bills the records of its
-- quadrant that no earlier claim (smaller id) of the provider covers; its
-- invoice may be NULL when that set was empty ("nothing to bill"). Every
-- record with id < floor_id is covered by this claim or an earlier one,
-- which bounds the next run's scan. The ledger itself is never written by
-- billing, so the run reads every record once and writes one row per
-- provider (see docs/PERFORMANCE.md, invoice run).
CREATE TABLE ledger_claims (
    id          BIGSERIAL PRIMARY KEY,
    provider_id BIGINT NOT NULL,
    invoice_id  BIGINT REFERENCES invoices(id),
    period      TEXT NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    high_id     BIGINT NOT NULL CHECK (high_id >= 0),
    ends_at     TIMESTAMPTZ NOT NULL,
    floor_id    BIGINT NOT NULL CHECK (floor_id >= 0 AND floor_id <= high_id + 1),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (provider_id, period)
);
CREATE INDEX ledger_claims_provider_idx ON ledger_claims (provider_id, id);
CREATE UNIQUE INDEX ledger_claims_invoice_key ON ledger_claims (invoice_id) WHERE invoice_id IS NOT NULL;

-- Existing assignments become claims: each live invoice covers up to its
-- highest record, before its period's end. Exact for invoices made in
-- period order, which is how every earlier run made them.
INSERT INTO ledger_claims (provider_id, invoice_id, period, high_id, ends_at, floor_id, created_at)
SELECT i.provider_id, i.id, i.period, COALESCE(max(l.id), 0), i.period_end, 0, i.created_at
FROM invoices i LEFT JOIN delivery_ledger l ON l.invoice_id = i.id
WHERE i.doc_type = 'invoice' AND i.status <> 'discarded'
GROUP BY i.id
ORDER BY i.id;

-- +goose StatementBegin
CREATE FUNCTION ledger_claims_guard() RETURNS trigger AS $$
DECLARE
    st TEXT;
BEGIN
    IF OLD.invoice_id IS NOT NULL THEN
        SELECT status INTO st FROM invoices WHERE id = OLD.invoice_id;
        IF st IS DISTINCT FROM 'draft' THEN
            RAISE EXCEPTION 'the claim of % invoice % cannot change', st, OLD.invoice_id
                USING ERRCODE = 'P0001', HINT = 'ledger_immutable';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER ledger_claims_guard BEFORE UPDATE OR DELETE ON ledger_claims
    FOR EACH ROW EXECUTE FUNCTION ledger_claims_guard();

-- The ledger is now append-only: no column of a record ever changes.
DROP TRIGGER delivery_ledger_guard ON delivery_ledger;
DROP TRIGGER delivery_ledger_no_delete ON delivery_ledger;
DROP INDEX delivery_ledger_uninvoiced_idx;
DROP INDEX delivery_ledger_position_key;
DROP INDEX delivery_ledger_invoice_idx;
ALTER TABLE delivery_ledger DROP COLUMN invoice_id, DROP COLUMN service_period, DROP COLUMN month_position;
CREATE TRIGGER delivery_ledger_append_only BEFORE UPDATE OR DELETE ON delivery_ledger
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();

-- +goose Down
DROP TRIGGER delivery_ledger_append_only ON delivery_ledger;
ALTER TABLE delivery_ledger ADD COLUMN invoice_id BIGINT REFERENCES invoices(id), ADD COLUMN service_period TEXT,
    ADD COLUMN month_position BIGINT;
CREATE INDEX delivery_ledger_uninvoiced_idx ON delivery_ledger (provider_id, delivered_at) WHERE invoice_id IS NULL;
CREATE UNIQUE INDEX delivery_ledger_position_key ON delivery_ledger (provider_id, kind, service_period, month_position)
    WHERE invoice_id IS NOT NULL;
CREATE INDEX delivery_ledger_invoice_idx ON delivery_ledger (invoice_id, kind, service_period, month_position)
    WHERE invoice_id IS NOT NULL;
CREATE TRIGGER delivery_ledger_no_delete BEFORE DELETE ON delivery_ledger
    FOR EACH ROW EXECUTE FUNCTION billing_usage_guard();
DROP TABLE ledger_claims;
DROP FUNCTION ledger_claims_guard();
