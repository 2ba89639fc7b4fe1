-- +goose Up
-- Support desk: B2B tickets of providers with their conversation (public
-- replies and internal notes), attachments, typed links, a timeline of
-- events, booked time, the SLA clock and the alerts sent about it.
--
-- Ticket numbers are "T-" || id; ids start at 1001 so numbers look like
-- numbers people can say on the phone.

-- One row of desk settings: who receives SLA escalations besides the assignee.
CREATE TABLE support_settings (
    id           SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    team_lead_id BIGINT REFERENCES staff_users(id),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO support_settings (id) VALUES (1);

CREATE TABLE support_tickets (
    id                     BIGSERIAL PRIMARY KEY,
    provider_id            BIGINT NOT NULL REFERENCES providers(id),
    subject                TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    description            TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 20000),
    category               TEXT NOT NULL CHECK (category IN ('onboarding','api_data','data_quality','billing','other')),
    priority               TEXT NOT NULL CHECK (priority IN ('P1','P2','P3','P4')),
    status                 TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new','open','waiting_on_provider','resolved','closed')),
    channel                TEXT NOT NULL CHECK (channel IN ('portal','api','staff')),
    contact_name           TEXT NOT NULL DEFAULT '',
    contact_email          TEXT NOT NULL CHECK (contact_email <> ''),
    opened_by_kind         TEXT NOT NULL,
    opened_by_id           BIGINT,
    opened_by_label        TEXT NOT NULL,
    assignee_id            BIGINT REFERENCES staff_users(id),
    billable               BOOLEAN NOT NULL DEFAULT false,
    billable_source        TEXT NOT NULL DEFAULT 'rule' CHECK (billable_source IN ('rule','support')),
    billable_reason        TEXT NOT NULL DEFAULT '',
    case_billed_at         TIMESTAMPTZ,          -- the case fee went to billing (once per ticket)
    merged_into_id         BIGINT REFERENCES support_tickets(id) CHECK (merged_into_id <> id),
    -- SLA clock, in business hours (see admin/support/sla.go). The
    -- resolution clock runs while the ticket is new or open; the seconds of
    -- finished running segments add up in sla_used_seconds.
    first_response_due     TIMESTAMPTZ NOT NULL,
    first_response_warn_at TIMESTAMPTZ NOT NULL,
    first_response_at      TIMESTAMPTZ,
    sla_used_seconds       BIGINT NOT NULL DEFAULT 0 CHECK (sla_used_seconds >= 0),
    sla_running_since      TIMESTAMPTZ,
    resolution_due         TIMESTAMPTZ,
    resolution_warn_at     TIMESTAMPTZ,
    resolved_at            TIMESTAMPTZ,
    closed_at              TIMESTAMPTZ,
    reopen_count           INT NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status IN ('new','open')) = (sla_running_since IS NOT NULL)),
    CHECK ((status IN ('new','open')) = (resolution_due IS NOT NULL)),
    CHECK ((status IN ('resolved','closed')) = (resolved_at IS NOT NULL) OR merged_into_id IS NOT NULL),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL)),
    CHECK (merged_into_id IS NULL OR status = 'closed'),
    CHECK (status = 'new' OR assignee_id IS NOT NULL OR merged_into_id IS NOT NULL)
);
ALTER SEQUENCE support_tickets_id_seq RESTART WITH 1001;
CREATE INDEX support_tickets_provider_idx ON support_tickets (provider_id, created_at DESC);
CREATE INDEX support_tickets_active_idx ON support_tickets (status, assignee_id) WHERE status IN ('new','open','waiting_on_provider');
CREATE INDEX support_tickets_resolved_idx ON support_tickets (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX support_tickets_merged_idx ON support_tickets (merged_into_id) WHERE merged_into_id IS NOT NULL;

-- The conversation. Internal notes are written by staff only.
CREATE TABLE support_messages (
    id           BIGSERIAL PRIMARY KEY,
    ticket_id    BIGINT NOT NULL REFERENCES support_tickets(id),
    author_kind  TEXT NOT NULL CHECK (author_kind IN ('staff','provider','system')),
    author_id    BIGINT,
    author_label TEXT NOT NULL,
    internal     BOOLEAN NOT NULL DEFAULT false,
    body         TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (NOT internal OR author_kind = 'staff')
);
CREATE INDEX support_messages_ticket_idx ON support_messages (ticket_id, created_at);

-- Files, type sniffed from the bytes; internal when attached to an internal note.
CREATE TABLE support_attachments (
    id           BIGSERIAL PRIMARY KEY,
    ticket_id    BIGINT NOT NULL REFERENCES support_tickets(id),
    message_id   BIGINT REFERENCES support_messages(id),
    internal     BOOLEAN NOT NULL DEFAULT false,
    filename     TEXT NOT NULL CHECK (filename <> ''),
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
    sha256       TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    data         BYTEA NOT NULL,
    uploaded_by  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX support_attachments_ticket_idx ON support_attachments (ticket_id);

-- Typed references to what a ticket is about.
CREATE TABLE support_links (
    id         BIGSERIAL PRIMARY KEY,
    ticket_id  BIGINT NOT NULL REFERENCES support_tickets(id),
    kind       TEXT NOT NULL CHECK (kind IN ('container','invoice','vin')),
    ref        TEXT NOT NULL CHECK (ref <> ''),
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (ticket_id, kind, ref)
);

-- What happened to a ticket besides messages; internal events are hidden from the provider.
CREATE TABLE support_events (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES support_tickets(id),
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_kind  TEXT NOT NULL,
    actor_label TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT NOT NULL DEFAULT '',
    to_status   TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    internal    BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX support_events_ticket_idx ON support_events (ticket_id, at);

-- Booked time. billed_at is set when the entry went to billing (once).
CREATE TABLE support_time_entries (
    id          BIGSERIAL PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES support_tickets(id),
    agent_id    BIGINT REFERENCES staff_users(id),
    agent_label TEXT NOT NULL,
    minutes     INT NOT NULL CHECK (minutes BETWEEN 1 AND 1440),
    billable    BOOLEAN NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    worked_on   DATE NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    billed_at   TIMESTAMPTZ
);
CREATE INDEX support_time_entries_ticket_idx ON support_time_entries (ticket_id);

-- SLA warnings (80 %) and breaches sent: one row per ticket, clock and level,
-- so the escalation job never alerts twice.
CREATE TABLE support_sla_alerts (
    ticket_id BIGINT NOT NULL REFERENCES support_tickets(id),
    sla       TEXT NOT NULL CHECK (sla IN ('first_response','resolution')),
    level     TEXT NOT NULL CHECK (level IN ('warning','breach')),
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, sla, level)
);

-- +goose Down
DROP TABLE support_sla_alerts;
DROP TABLE support_time_entries;
DROP TABLE support_events;
DROP TABLE support_links;
DROP TABLE support_attachments;
DROP TABLE support_messages;
DROP TABLE support_tickets;
DROP TABLE support_settings;
