-- +goose Up
-- Billing: the seller's identity, the one published price list (versioned),
-- the delivery ledger, billable support items, invoice runs, invoices and
-- credit notes with their lines, payments, gapless number series and the
-- rendered documents. Money is NUMERIC, never float. Provider ids carry no
-- foreign key: billing must not depend on the onboarding migration order,
-- and a ledger record must outlive any provider row.

-- The seller (us). One row; finalization refuses while it is incomplete.
CREATE TABLE billing_seller (
    id                 SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    name               TEXT NOT NULL DEFAULT '',
    street             TEXT NOT NULL DEFAULT '',
    postal_code        TEXT NOT NULL DEFAULT '',
    city               TEXT NOT NULL DEFAULT '',
    country            TEXT NOT NULL DEFAULT 'DE',
    vat_id             TEXT NOT NULL DEFAULT '',
    tax_number         TEXT NOT NULL DEFAULT '',
    register_id        TEXT NOT NULL DEFAULT '',   -- e.g. "HRB 123456, Amtsgericht München"
    iban               TEXT NOT NULL DEFAULT '',
    bic                TEXT NOT NULL DEFAULT '',
    bank_name          TEXT NOT NULL DEFAULT '',
    email              TEXT NOT NULL DEFAULT '',
    phone              TEXT NOT NULL DEFAULT '',
    payment_terms_days INT NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 120),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO billing_seller (id) VALUES (1);

-- Price list versions: a version is valid from valid_from until the next
-- version's valid_from (half-open). Once valid_from has passed the version
-- is in use and the database refuses any change to it or its items.
CREATE TABLE price_list_versions (
    id         BIGSERIAL PRIMARY KEY,
    valid_from TIMESTAMPTZ NOT NULL UNIQUE,
    currency   TEXT NOT NULL DEFAULT 'EUR' CHECK (currency = 'EUR'),
    note       TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Items. telematics and push are graduated by the provider's monthly count
-- (tier_from..tier_to are 1-based unit positions, tier_to NULL = open);
-- support_case is per billable case by priority; support_time is per started
-- 15 minutes of billable time.
CREATE TABLE price_list_items (
    id         BIGSERIAL PRIMARY KEY,
    version_id BIGINT NOT NULL REFERENCES price_list_versions(id) ON DELETE CASCADE,
    item       TEXT NOT NULL CHECK (item IN ('telematics','push','support_case','support_time')),
    priority   TEXT NOT NULL DEFAULT '' CHECK (priority IN ('','P1','P2','P3','P4')),
    tier_from  BIGINT NOT NULL DEFAULT 1 CHECK (tier_from >= 1),
    tier_to    BIGINT CHECK (tier_to IS NULL OR tier_to >= tier_from),
    unit_price NUMERIC(12,4) NOT NULL CHECK (unit_price >= 0),
    UNIQUE (version_id, item, priority, tier_from)
);

-- +goose StatementBegin
CREATE FUNCTION price_list_versions_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.valid_from <= now() THEN
        RAISE EXCEPTION 'price list version % is in use since % and cannot change', OLD.id, OLD.valid_from
            USING ERRCODE = 'P0001', HINT = 'price_list_version_in_use';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.valid_from <= now() THEN
        RAISE EXCEPTION 'price list version % cannot be moved into the past', OLD.id
            USING ERRCODE = 'P0001', HINT = 'price_list_version_in_use';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- An item may change only while its version is not in use; a version is
-- filled in the transaction that creates it (xmin = the current transaction).
CREATE FUNCTION price_list_items_guard() RETURNS trigger AS $$
DECLARE
    vid BIGINT;
    vf  TIMESTAMPTZ;
    vx  XID;
BEGIN
    FOREACH vid IN ARRAY ARRAY[CASE WHEN TG_OP <> 'INSERT' THEN OLD.version_id END,
                               CASE WHEN TG_OP <> 'DELETE' THEN NEW.version_id END] LOOP
        CONTINUE WHEN vid IS NULL;
        SELECT valid_from, xmin INTO vf, vx FROM price_list_versions WHERE id = vid;
        IF vf IS NOT NULL AND vf <= now() AND vx <> pg_current_xact_id()::xid THEN
            RAISE EXCEPTION 'price list version % is in use since % and its items cannot change', vid, vf
                USING ERRCODE = 'P0001', HINT = 'price_list_version_in_use';
        END IF;
    END LOOP;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER price_list_versions_guard BEFORE UPDATE OR DELETE ON price_list_versions
    FOR EACH ROW EXECUTE FUNCTION price_list_versions_guard();
CREATE TRIGGER price_list_items_guard BEFORE INSERT OR UPDATE OR DELETE ON price_list_items
    FOR EACH ROW EXECUTE FUNCTION price_list_items_guard();

CREATE TABLE invoice_runs (
    id                BIGSERIAL PRIMARY KEY,
    period            TEXT NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    trigger           TEXT NOT NULL CHECK (trigger IN ('cli','ui','schedule','demo','test')),
    started_by        TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running','succeeded','failed','interrupted')),
    providers_total   INT NOT NULL DEFAULT 0,
    providers_done    INT NOT NULL DEFAULT 0,
    invoices_created  INT NOT NULL DEFAULT 0,
    providers_skipped INT NOT NULL DEFAULT 0,
    providers_failed  INT NOT NULL DEFAULT 0,
    records_billed    BIGINT NOT NULL DEFAULT 0,
    net_total         NUMERIC(14,2) NOT NULL DEFAULT 0,
    error             TEXT NOT NULL DEFAULT '',
    started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at       TIMESTAMPTZ
);
CREATE INDEX invoice_runs_period_idx ON invoice_runs (period, started_at DESC);

-- Invoices and credit notes (doc_type). After finalization the database
-- rejects every change except the lifecycle and payment fields.
CREATE TABLE invoices (
    id                  BIGSERIAL PRIMARY KEY,
    doc_type            TEXT NOT NULL DEFAULT 'invoice' CHECK (doc_type IN ('invoice','credit_note')),
    provider_id         BIGINT NOT NULL,
    period              TEXT NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    period_start        TIMESTAMPTZ NOT NULL,
    period_end          TIMESTAMPTZ NOT NULL CHECK (period_end > period_start),
    status              TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft','finalized','sent','paid','discarded')),
    number              TEXT UNIQUE,
    issue_date          DATE,
    due_date            DATE,
    currency            TEXT NOT NULL DEFAULT 'EUR',
    buyer_name          TEXT NOT NULL DEFAULT '',
    buyer_street        TEXT NOT NULL DEFAULT '',
    buyer_postal_code   TEXT NOT NULL DEFAULT '',
    buyer_city          TEXT NOT NULL DEFAULT '',
    buyer_country       TEXT NOT NULL DEFAULT '',
    buyer_vat_id        TEXT NOT NULL DEFAULT '',
    buyer_email         TEXT NOT NULL DEFAULT '',
    seller_snapshot     JSONB,
    tax_category        TEXT NOT NULL DEFAULT '' CHECK (tax_category IN ('','S','AE','O')),
    tax_rate            NUMERIC(5,2) NOT NULL DEFAULT 0,
    tax_note            TEXT NOT NULL DEFAULT '',
    net_total           NUMERIC(14,2) NOT NULL DEFAULT 0,
    tax_total           NUMERIC(14,2) NOT NULL DEFAULT 0,
    gross_total         NUMERIC(14,2) NOT NULL DEFAULT 0,
    paid_total          NUMERIC(14,2) NOT NULL DEFAULT 0,
    corrects_invoice_id BIGINT REFERENCES invoices(id),
    reason              TEXT NOT NULL DEFAULT '',
    run_id              BIGINT REFERENCES invoice_runs(id),
    created_by          TEXT NOT NULL DEFAULT '',
    created_by_id       BIGINT,
    finalized_by        TEXT NOT NULL DEFAULT '',
    finalized_by_id     BIGINT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    finalized_at        TIMESTAMPTZ,
    sent_at             TIMESTAMPTZ,
    paid_at             TIMESTAMPTZ,
    discarded_at        TIMESTAMPTZ,
    last_reminder_at    TIMESTAMPTZ,
    CHECK ((status IN ('draft','discarded')) = (number IS NULL)),
    CHECK (doc_type = 'invoice' OR corrects_invoice_id IS NOT NULL),
    -- four eyes: a credit note is issued by someone other than who drafted it
    CHECK (doc_type = 'invoice' OR finalized_by_id IS NULL OR created_by_id IS NULL OR finalized_by_id <> created_by_id)
);
-- One live invoice per provider and period: re-runs and concurrent runs collide here.
CREATE UNIQUE INDEX invoices_one_per_provider_period ON invoices (provider_id, period)
    WHERE doc_type = 'invoice' AND status <> 'discarded';
CREATE INDEX invoices_period_idx ON invoices (period, status);
CREATE INDEX invoices_corrects_idx ON invoices (corrects_invoice_id) WHERE corrects_invoice_id IS NOT NULL;

CREATE TABLE invoice_lines (
    id             BIGSERIAL PRIMARY KEY,
    invoice_id     BIGINT NOT NULL REFERENCES invoices(id),
    position       INT NOT NULL,
    item           TEXT NOT NULL CHECK (item IN ('telematics','push','support_case','support_time','manual','credit')),
    description    TEXT NOT NULL,
    service_period TEXT NOT NULL,          -- the month the usage belongs to (late records keep theirs)
    version_id     BIGINT REFERENCES price_list_versions(id),
    tier_from      BIGINT,                 -- unit positions within the month's count
    tier_to        BIGINT,
    ticket_id      BIGINT,
    priority       TEXT NOT NULL DEFAULT '',
    quantity       NUMERIC(14,3) NOT NULL,
    unit_code      TEXT NOT NULL DEFAULT 'C62',
    unit_price     NUMERIC(12,4) NOT NULL CHECK (unit_price >= 0),
    net_amount     NUMERIC(14,2) NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    created_by     TEXT NOT NULL DEFAULT '',
    UNIQUE (invoice_id, position)
);

-- Per-container breakdown of a usage group (item, service period) of an invoice.
CREATE TABLE invoice_usage_details (
    invoice_id        BIGINT NOT NULL REFERENCES invoices(id),
    item              TEXT NOT NULL,
    service_period    TEXT NOT NULL,
    container_id      BIGINT NOT NULL,
    container_version INT NOT NULL,
    quantity          BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, item, service_period, container_id, container_version)
);

-- The delivery ledger: one row per billable transfer to a provider (an API
-- response that carried values, or an accepted push). Written before the
-- data leaves; never deleted; only the invoice assignment may change, and
-- only while the invoice is a draft.
CREATE TABLE delivery_ledger (
    id                BIGSERIAL PRIMARY KEY,
    provider_id       BIGINT NOT NULL,
    client_id         BIGINT,
    vin               TEXT NOT NULL,
    container_id      BIGINT NOT NULL,
    container_version INT NOT NULL,
    consent_id        BIGINT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('pull','push')),
    keys_delivered    INT NOT NULL CHECK (keys_delivered > 0),
    bytes             BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    request_id        TEXT NOT NULL CHECK (request_id <> ''),
    delivered_at      TIMESTAMPTZ NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when an invoice claims the record: the month the delivery belongs
    -- to (billing zone) and its position in the provider's count of that
    -- kind in that month (1-based, contiguous over the invoices that billed
    -- the month). A record belongs to the one line of its invoice whose
    -- item, service period and tier range contain it.
    invoice_id        BIGINT REFERENCES invoices(id),
    service_period    TEXT,
    month_position    BIGINT,
    CHECK ((invoice_id IS NULL) = (service_period IS NULL) AND (invoice_id IS NULL) = (month_position IS NULL))
);
-- A retried write of the same transfer is recorded once.
CREATE UNIQUE INDEX delivery_ledger_request_key ON delivery_ledger (provider_id, kind, request_id);
CREATE INDEX delivery_ledger_provider_time_idx ON delivery_ledger (provider_id, delivered_at);
CREATE INDEX delivery_ledger_uninvoiced_idx ON delivery_ledger (provider_id, delivered_at) WHERE invoice_id IS NULL;
-- Positions are unique per provider, kind and month: no unit is billed twice.
CREATE UNIQUE INDEX delivery_ledger_position_key ON delivery_ledger (provider_id, kind, service_period, month_position)
    WHERE invoice_id IS NOT NULL;
CREATE INDEX delivery_ledger_invoice_idx ON delivery_ledger (invoice_id, kind, service_period, month_position)
    WHERE invoice_id IS NOT NULL;
CREATE INDEX delivery_ledger_vin_time_idx ON delivery_ledger (vin, delivered_at);

-- Billable support items, written by the support desk through billing's
-- insert function; source_key makes each time entry count once.
CREATE TABLE billing_support_items (
    id              BIGSERIAL PRIMARY KEY,
    provider_id     BIGINT NOT NULL,
    ticket_id       BIGINT NOT NULL,
    ticket_ref      TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL CHECK (kind IN ('case','time')),
    priority        TEXT NOT NULL CHECK (priority IN ('P1','P2','P3','P4')),
    minutes         INT NOT NULL DEFAULT 0 CHECK ((kind = 'time' AND minutes > 0) OR (kind = 'case' AND minutes = 0)),
    occurred_at     TIMESTAMPTZ NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    source_key      TEXT NOT NULL UNIQUE CHECK (source_key <> ''),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    invoice_id      BIGINT REFERENCES invoices(id),
    invoice_line_id BIGINT REFERENCES invoice_lines(id)
);
-- A case fee is billed at most once per ticket (a reopened case bills only new time).
CREATE UNIQUE INDEX billing_support_items_one_case ON billing_support_items (ticket_id) WHERE kind = 'case';
CREATE INDEX billing_support_items_uninvoiced_idx ON billing_support_items (provider_id, occurred_at) WHERE invoice_id IS NULL;
CREATE INDEX billing_support_items_invoice_idx ON billing_support_items (invoice_id) WHERE invoice_id IS NOT NULL;

CREATE TABLE invoice_payments (
    id          BIGSERIAL PRIMARY KEY,
    invoice_id  BIGINT NOT NULL REFERENCES invoices(id),
    amount      NUMERIC(14,2) NOT NULL CHECK (amount > 0),
    received_on DATE NOT NULL,
    reference   TEXT NOT NULL DEFAULT '',
    booked_by   TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX invoice_payments_invoice_idx ON invoice_payments (invoice_id);

-- Gapless number series per prefix and year; the finalizing transaction
-- locks the row, so a rolled-back finalization gives its number back.
CREATE TABLE invoice_number_series (
    prefix      TEXT NOT NULL,
    year        INT NOT NULL,
    last_number INT NOT NULL DEFAULT 0,
    PRIMARY KEY (prefix, year)
);

-- The documents as rendered at finalization, with their sha256.
CREATE TABLE invoice_documents (
    invoice_id BIGINT NOT NULL REFERENCES invoices(id),
    format     TEXT NOT NULL CHECK (format IN ('pdf','ubl')),
    content    BYTEA NOT NULL,
    sha256     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, format)
);

-- +goose StatementBegin
CREATE FUNCTION invoices_guard() RETURNS trigger AS $$
DECLARE
    n invoices%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoices are never deleted (discard the draft instead)'
            USING ERRCODE = 'P0001', HINT = 'invoice_immutable';
    END IF;
    IF OLD.status = 'draft' THEN
        RETURN NEW;
    END IF;
    IF OLD.status = 'discarded' THEN
        RAISE EXCEPTION 'invoice % was discarded and cannot change', OLD.id
            USING ERRCODE = 'P0001', HINT = 'invoice_immutable';
    END IF;
    -- finalized, sent, paid: only the lifecycle and payment fields may move
    n := NEW;
    n.status := OLD.status;
    n.paid_total := OLD.paid_total;
    n.sent_at := OLD.sent_at;
    n.paid_at := OLD.paid_at;
    n.last_reminder_at := OLD.last_reminder_at;
    IF n IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'invoice % is % and can no longer change (issue a credit note)', OLD.id, OLD.status
            USING ERRCODE = 'P0001', HINT = 'invoice_immutable';
    END IF;
    IF NEW.status NOT IN ('finalized','sent','paid') THEN
        RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'P0001', HINT = 'invoice_immutable';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION invoice_children_guard() RETURNS trigger AS $$
DECLARE
    st TEXT;
BEGIN
    SELECT status INTO st FROM invoices
     WHERE id = CASE WHEN TG_OP = 'INSERT' THEN NEW.invoice_id ELSE OLD.invoice_id END;
    IF st IS DISTINCT FROM 'draft' THEN
        RAISE EXCEPTION '% of invoice % cannot change: the invoice is %', TG_TABLE_NAME,
            CASE WHEN TG_OP = 'INSERT' THEN NEW.invoice_id ELSE OLD.invoice_id END, st
            USING ERRCODE = 'P0001', HINT = 'invoice_immutable';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Ledger records and support items: never deleted; only the invoice
-- assignment may change, and only away from or to a draft invoice.
CREATE FUNCTION billing_usage_guard() RETURNS trigger AS $$
DECLARE
    st TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME
            USING ERRCODE = 'P0001', HINT = 'ledger_immutable';
    END IF;
    IF (to_jsonb(NEW) - ARRAY['invoice_id','invoice_line_id','service_period','month_position'])
       IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['invoice_id','invoice_line_id','service_period','month_position']) THEN
        RAISE EXCEPTION '% row % cannot change', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'P0001', HINT = 'ledger_immutable';
    END IF;
    IF OLD.invoice_id IS NOT NULL THEN
        SELECT status INTO st FROM invoices WHERE id = OLD.invoice_id;
        IF st <> 'draft' AND (to_jsonb(NEW) IS DISTINCT FROM to_jsonb(OLD)) THEN
            RAISE EXCEPTION '% row % is on % invoice % and cannot move', TG_TABLE_NAME, OLD.id, st, OLD.invoice_id
                USING ERRCODE = 'P0001', HINT = 'ledger_immutable';
        END IF;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION billing_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0001', HINT = 'append_only';
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_guard();
CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_children_guard();
CREATE TRIGGER invoice_usage_details_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_usage_details
    FOR EACH ROW EXECUTE FUNCTION invoice_children_guard();
-- The WHEN clauses keep the common case (an invoice claiming unbilled
-- rows) free of trigger calls; everything else goes through the guard.
CREATE TRIGGER delivery_ledger_guard BEFORE UPDATE ON delivery_ledger
    FOR EACH ROW WHEN (OLD.invoice_id IS NOT NULL OR
        (OLD.id, OLD.provider_id, OLD.client_id, OLD.vin, OLD.container_id, OLD.container_version, OLD.consent_id, OLD.kind,
         OLD.keys_delivered, OLD.bytes, OLD.request_id, OLD.delivered_at, OLD.recorded_at)
        IS DISTINCT FROM
        (NEW.id, NEW.provider_id, NEW.client_id, NEW.vin, NEW.container_id, NEW.container_version, NEW.consent_id, NEW.kind,
         NEW.keys_delivered, NEW.bytes, NEW.request_id, NEW.delivered_at, NEW.recorded_at))
    EXECUTE FUNCTION billing_usage_guard();
CREATE TRIGGER delivery_ledger_no_delete BEFORE DELETE ON delivery_ledger
    FOR EACH ROW EXECUTE FUNCTION billing_usage_guard();
CREATE TRIGGER billing_support_items_guard BEFORE UPDATE OR DELETE ON billing_support_items
    FOR EACH ROW EXECUTE FUNCTION billing_usage_guard();
CREATE TRIGGER delivery_ledger_no_truncate BEFORE TRUNCATE ON delivery_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER invoice_payments_append_only BEFORE UPDATE OR DELETE ON invoice_payments
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
CREATE TRIGGER invoice_documents_append_only BEFORE UPDATE OR DELETE ON invoice_documents
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();

-- +goose Down
DROP TABLE invoice_documents;
DROP TABLE invoice_number_series;
DROP TABLE invoice_payments;
DROP TABLE billing_support_items;
DROP TABLE delivery_ledger;
DROP TABLE invoice_usage_details;
DROP TABLE invoice_lines;
DROP TABLE invoices;
DROP TABLE invoice_runs;
DROP TABLE price_list_items;
DROP TABLE price_list_versions;
DROP TABLE billing_seller;
DROP FUNCTION billing_append_only();
DROP FUNCTION billing_usage_guard();
DROP FUNCTION invoice_children_guard();
DROP FUNCTION invoices_guard();
DROP FUNCTION price_list_items_guard();
DROP FUNCTION price_list_versions_guard();
