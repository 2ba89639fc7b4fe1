-- +goose Up
-- Sign-in through OpenID Connect providers (policies/identity): staff
-- through the company's identity provider, vehicle owners through the
-- manufacturer's customer identity.

-- A sign-in between the redirect to the provider and its return. The
-- browser holds a random secret in a cookie; state, nonce and the PKCE
-- verifier are derived from it, so this table holds only the state's
-- SHA-256: a row is consumed by the callback (a replayed state finds none)
-- and lapses after ten minutes.
CREATE TABLE oidc_sign_ins (
    state_hash BYTEA PRIMARY KEY,
    provider   TEXT NOT NULL,   -- which relying party started it: staff, customer, ...
    next       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oidc_sign_ins_expires_idx ON oidc_sign_ins (expires_at);

-- A staff member known to the company's identity provider: (issuer,
-- subject) identifies them; accounts are created at their first sign-in.
ALTER TABLE staff_users ADD COLUMN oidc_issuer TEXT, ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX staff_users_oidc_key ON staff_users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;

-- The customer identity's subject of a customer account: the account the
-- vehicle master data maps vehicles to. One customer identity (one
-- issuer), so the subject alone identifies the account.
ALTER TABLE customer_accounts ADD COLUMN identity_subject TEXT;
CREATE UNIQUE INDEX customer_accounts_identity_subject_key ON customer_accounts (identity_subject) WHERE identity_subject IS NOT NULL;

-- Which identity provider a session was started through (empty: a local
-- password) and the subject it named: logout ends the provider's session
-- too, and the consent decisions record the subject.
ALTER TABLE sessions ADD COLUMN identity_provider TEXT NOT NULL DEFAULT '',
    ADD COLUMN identity_subject TEXT NOT NULL DEFAULT '';

-- The identity subject that made a consent decision (empty: none, e.g. a
-- local password, staff or the system).
ALTER TABLE consent_changes ADD COLUMN actor_subject TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE consent_changes DROP COLUMN actor_subject;
ALTER TABLE sessions DROP COLUMN identity_subject, DROP COLUMN identity_provider;
DROP INDEX customer_accounts_identity_subject_key;
ALTER TABLE customer_accounts DROP COLUMN identity_subject;
DROP INDEX staff_users_oidc_key;
ALTER TABLE staff_users DROP COLUMN oidc_subject, DROP COLUMN oidc_issuer;
DROP TABLE oidc_sign_ins;
