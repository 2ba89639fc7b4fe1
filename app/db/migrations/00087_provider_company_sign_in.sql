-- +goose Up
-- Provider users sign in through their own company's OpenID Connect
-- provider (issue 20, item 4): the provider's administrator configures it
-- in the partner portal; the e-mail domain a person enters selects the
-- provider whose configuration allows it.

-- One company identity provider per provider. The client secret must stay
-- recoverable (the code exchange sends it), so it is sealed at rest under
-- SECRETS_KEY like a webhook signing secret ("enc1:..."; in clear only
-- without a key, i.e. in development) and never shown again.
CREATE TABLE provider_sign_in_configs (
    provider_id   BIGINT PRIMARY KEY REFERENCES providers(id),
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    -- counts saves: the relying party built from a configuration is kept
    -- until the configuration changes
    version       INT NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by    TEXT NOT NULL DEFAULT ''
);

-- The e-mail domains a configuration allows. A domain belongs to one
-- provider at most, so a domain selects one provider or none.
CREATE TABLE provider_sign_in_domains (
    domain      TEXT PRIMARY KEY CHECK (domain = lower(domain) AND domain <> ''),
    provider_id BIGINT NOT NULL REFERENCES provider_sign_in_configs(provider_id) ON DELETE CASCADE
);
CREATE INDEX provider_sign_in_domains_provider_idx ON provider_sign_in_domains (provider_id);

-- The person at the company's provider a provider user is linked to at
-- their first sign-in through it: later sign-ins must name the same
-- subject, so an address reassigned at the company does not inherit the
-- account.
ALTER TABLE provider_users ADD COLUMN oidc_issuer TEXT, ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX provider_users_oidc_key ON provider_users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;

-- The address the person entered to start a sign-in (login_hint): the ID
-- token must carry the same one.
ALTER TABLE oidc_sign_ins ADD COLUMN login_hint TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE oidc_sign_ins DROP COLUMN login_hint;
DROP INDEX provider_users_oidc_key;
ALTER TABLE provider_users DROP COLUMN oidc_subject, DROP COLUMN oidc_issuer;
DROP TABLE provider_sign_in_domains;
DROP TABLE provider_sign_in_configs;
