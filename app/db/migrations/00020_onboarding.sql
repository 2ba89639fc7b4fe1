-- +goose Up
-- Provider onboarding: applications and their review, documents, provider
-- users, API clients, the 31 supported markets and providers' market access.

-- The published partner terms; registration records which version was accepted.
CREATE TABLE terms_versions (
    version      TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    summary      TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL
);
INSERT INTO terms_versions (version, title, summary, published_at) VALUES
    ('2025-01', 'CarData Partner Terms 2025-01',
     'Non-discriminatory access for every registered provider on the published price list; data only with the customer''s explicit consent and for one stated purpose; billing of delivered data only.',
     '2025-01-01T00:00:00Z');

CREATE TABLE markets (
    code       CHAR(2) PRIMARY KEY,
    name       TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE, -- false: paused by a partner manager
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO markets (code, name) VALUES
    ('BE','Belgium'),('BG','Bulgaria'),('DK','Denmark'),('DE','Germany'),('EE','Estonia'),
    ('FI','Finland'),('FR','France'),('GR','Greece'),('IE','Ireland'),('IT','Italy'),
    ('HR','Croatia'),('LV','Latvia'),('LI','Liechtenstein'),('LT','Lithuania'),('LU','Luxembourg'),
    ('MT','Malta'),('NL','Netherlands'),('NO','Norway'),('AT','Austria'),('PL','Poland'),
    ('PT','Portugal'),('RO','Romania'),('SE','Sweden'),('CH','Switzerland'),('SK','Slovakia'),
    ('SI','Slovenia'),('ES','Spain'),('CZ','Czechia'),('HU','Hungary'),('GB','United Kingdom'),
    ('CY','Cyprus');

-- A provider is an application until approved; approved providers are active.
CREATE TABLE providers (
    id                BIGSERIAL PRIMARY KEY,
    legal_name        TEXT NOT NULL,
    legal_form        TEXT NOT NULL,
    street            TEXT NOT NULL,
    postal_code       TEXT NOT NULL,
    city              TEXT NOT NULL,
    country           CHAR(2) NOT NULL,             -- country of seat (EEA)
    vat_id            TEXT NOT NULL,                -- normalised, with prefix
    register_number   TEXT NOT NULL,
    contact_name      TEXT NOT NULL,
    contact_email     TEXT NOT NULL,
    contact_phone     TEXT NOT NULL DEFAULT '',
    billing_email     TEXT NOT NULL,
    intended_services TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'submitted' CHECK (status IN
                      ('submitted','in_review','info_requested','active','rejected','suspended','terminated')),
    status_reason     TEXT NOT NULL DEFAULT '',     -- last reason, question or note
    reviewer_id       BIGINT REFERENCES staff_users(id),
    review_flags      TEXT NOT NULL DEFAULT '',     -- e.g. similar names, for the reviewer
    terms_version     TEXT NOT NULL REFERENCES terms_versions(version),
    terms_accepted_at TIMESTAMPTZ NOT NULL,
    terms_client_addr TEXT NOT NULL,
    submitted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    waiting_since     TIMESTAMPTZ NOT NULL DEFAULT now(), -- since when the provider waits for us
    approved_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One open application or provider per VAT ID; rejected and terminated ones may re-apply.
CREATE UNIQUE INDEX providers_vat_id_open_key ON providers (vat_id) WHERE status NOT IN ('rejected','terminated');
CREATE INDEX providers_vat_id_idx ON providers (vat_id);
CREATE INDEX providers_status_idx ON providers (status, waiting_since);
CREATE INDEX providers_country_idx ON providers (country);

-- The review history: every transition, question and answer, in order.
CREATE TABLE provider_events (
    id          BIGSERIAL PRIMARY KEY,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    action      TEXT NOT NULL,                     -- submit, claim, approve, answer, ...
    from_status TEXT NOT NULL DEFAULT '',
    to_status   TEXT NOT NULL DEFAULT '',
    actor_kind  TEXT NOT NULL,
    actor_id    BIGINT,
    actor_label TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''           -- reason, question or answer
);
CREATE INDEX provider_events_provider_idx ON provider_events (provider_id, id);

CREATE TABLE provider_documents (
    id           BIGSERIAL PRIMARY KEY,
    provider_id  BIGINT NOT NULL REFERENCES providers(id),
    kind         TEXT NOT NULL DEFAULT 'register_extract',
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL CHECK (content_type IN ('application/pdf','image/png','image/jpeg')),
    size_bytes   BIGINT NOT NULL CHECK (size_bytes > 0 AND size_bytes <= 10485760),
    sha256       CHAR(64) NOT NULL,
    data         BYTEA NOT NULL,
    uploaded_by  TEXT NOT NULL,
    uploaded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX provider_documents_provider_idx ON provider_documents (provider_id);

-- Provider users are a separate identity from staff; they sign in to /portal.
CREATE TABLE provider_users (
    id                BIGSERIAL PRIMARY KEY,
    provider_id       BIGINT NOT NULL REFERENCES providers(id),
    email             TEXT NOT NULL,
    name              TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('provider_admin','provider_developer','provider_finance')),
    password_hash     TEXT NOT NULL DEFAULT '',     -- empty until the user sets one
    active            BOOLEAN NOT NULL DEFAULT TRUE,
    invite_token_hash BYTEA UNIQUE,                 -- SHA-256 of the one-time set-password token
    invite_expires_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX provider_users_email_key ON provider_users (lower(email));
CREATE INDEX provider_users_provider_idx ON provider_users (provider_id);

CREATE TABLE provider_login_attempts (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    succeeded   BOOLEAN NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX provider_login_attempts_email_idx ON provider_login_attempts (lower(email), at);
CREATE INDEX provider_login_attempts_addr_idx ON provider_login_attempts (client_addr, at);

-- API clients: the secret is shown once; only its SHA-256 is kept. A rotation
-- keeps the previous secret valid until previous_valid_until.
CREATE TABLE api_clients (
    id                   BIGSERIAL PRIMARY KEY,
    provider_id          BIGINT NOT NULL REFERENCES providers(id),
    client_id            TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    secret_hash          BYTEA NOT NULL,
    secret_hint          TEXT NOT NULL,             -- last 4 characters, to tell secrets apart
    previous_secret_hash BYTEA,
    previous_valid_until TIMESTAMPTZ,
    created_by           TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    rotated_at           TIMESTAMPTZ,
    revoked_at           TIMESTAMPTZ,
    last_used_at         TIMESTAMPTZ
);
CREATE INDEX api_clients_provider_idx ON api_clients (provider_id);

-- A provider's request for a market and the partner manager's decision.
CREATE TABLE market_access (
    id           BIGSERIAL PRIMARY KEY,
    provider_id  BIGINT NOT NULL REFERENCES providers(id),
    market       CHAR(2) NOT NULL REFERENCES markets(code),
    status       TEXT NOT NULL CHECK (status IN ('requested','approved','rejected')),
    reason       TEXT NOT NULL DEFAULT '',
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at   TIMESTAMPTZ,
    decided_by   TEXT NOT NULL DEFAULT '',
    UNIQUE (provider_id, market)
);
CREATE INDEX market_access_market_idx ON market_access (market, status);

-- +goose Down
DROP TABLE market_access;
DROP TABLE api_clients;
DROP TABLE provider_login_attempts;
DROP TABLE provider_users;
DROP TABLE provider_documents;
DROP TABLE provider_events;
DROP TABLE providers;
DROP TABLE markets;
DROP TABLE terms_versions;
