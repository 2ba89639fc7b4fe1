-- +goose Up
-- Vehicle registry: customer accounts, vehicles, who holds which vehicle, and
-- connected-service subscriptions (what each service enables is defined in
-- onboarding/vehicles/services.go).
CREATE TABLE customer_accounts (
    id         BIGSERIAL PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customer_accounts_email_key ON customer_accounts (lower(email));

CREATE TABLE vehicles (
    id                 BIGSERIAL PRIMARY KEY,
    -- ISO 3779: 17 characters, digits and capital letters without I, O and Q.
    vin                TEXT NOT NULL UNIQUE CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    brand              TEXT NOT NULL CHECK (brand IN ('BMW','MINI')),
    model              TEXT NOT NULL,
    drivetrain         TEXT NOT NULL CHECK (drivetrain IN ('combustion','phev','bev')),
    market             TEXT NOT NULL CHECK (market ~ '^[A-Z]{2}$'), -- ISO 3166-1 alpha-2 of registration
    telematics_capable BOOLEAN NOT NULL,
    sim_active         BOOLEAN NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX vehicles_market_idx ON vehicles (market, brand);

-- Who holds a vehicle: one primary holder (decides on consents), any number
-- of secondary users.
CREATE TABLE vehicle_holders (
    vehicle_id BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES customer_accounts(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('primary','secondary')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, account_id)
);
CREATE UNIQUE INDEX vehicle_holders_one_primary ON vehicle_holders (vehicle_id) WHERE role = 'primary';
CREATE INDEX vehicle_holders_account_idx ON vehicle_holders (account_id);

-- A subscription is valid from starts_at (inclusive) until ends_at
-- (exclusive, NULL = open-ended).
CREATE TABLE service_subscriptions (
    id         BIGSERIAL PRIMARY KEY,
    vehicle_id BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    service    TEXT NOT NULL,
    starts_at  TIMESTAMPTZ NOT NULL,
    ends_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX service_subscriptions_vehicle_idx ON service_subscriptions (vehicle_id, starts_at);

-- +goose Down
DROP TABLE service_subscriptions;
DROP TABLE vehicle_holders;
DROP TABLE vehicles;
DROP TABLE customer_accounts;
