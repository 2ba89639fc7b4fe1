-- +goose Up
-- Signing secrets are encrypted at rest under SECRETS_KEY ("enc1:" +
-- base64 of nonce and AES-256-GCM ciphertext; onboarding/webhooks/sealed.go);
-- without a key (development) they stay in clear.
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_secret_check;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_secret_check
    CHECK (secret LIKE 'whsec\_%' OR secret LIKE 'enc1:%');

-- +goose Down
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_secret_check;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_secret_check CHECK (secret LIKE 'whsec_%');
