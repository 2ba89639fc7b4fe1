-- +goose Up
-- The sandbox (issue 19, item 4): a provider's test access to a simulated
-- fleet of its own under the same API. Everything of the sandbox carries
-- its realm, and the data-access decision (policies.Decide) compares the
-- caller's realm with the vehicle's and the container's, so a sandbox
-- client never reads a real vehicle and a production client never a
-- simulated one.

-- A sandbox API client: its tokens reach the same /api/v1 URLs but only the
-- provider's simulated fleet. It can be created before the provider is
-- approved.
ALTER TABLE api_clients ADD COLUMN sandbox BOOLEAN NOT NULL DEFAULT FALSE;

-- A simulated vehicle belongs to one provider's sandbox fleet; NULL for every
-- real vehicle.
ALTER TABLE vehicles ADD COLUMN sandbox_provider_id BIGINT REFERENCES providers(id);
CREATE INDEX vehicles_sandbox_idx ON vehicles (sandbox_provider_id) WHERE sandbox_provider_id IS NOT NULL;

-- A simulated customer (the holder of a simulated vehicle); it never signs
-- in (no password, no identity subject) and answers consent requests by rule
-- or by the provider's button on the portal's sandbox page.
ALTER TABLE customer_accounts ADD COLUMN sandbox_provider_id BIGINT REFERENCES providers(id);

-- A sandbox data container: approved on creation without review, usable
-- only by sandbox clients and only with simulated vehicles. The flag is
-- copied to its versions, as provider_id is, so the decision's facts need
-- no join.
ALTER TABLE containers ADD COLUMN sandbox BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE container_versions ADD COLUMN sandbox BOOLEAN NOT NULL DEFAULT FALSE;

-- A sandbox webhook endpoint (created by a sandbox client): it receives the
-- events of the simulated fleet and sandbox containers, and only those.
ALTER TABLE webhook_endpoints ADD COLUMN sandbox BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN sandbox;
ALTER TABLE container_versions DROP COLUMN sandbox;
ALTER TABLE containers DROP COLUMN sandbox;
ALTER TABLE customer_accounts DROP COLUMN sandbox_provider_id;
DROP INDEX vehicles_sandbox_idx;
ALTER TABLE vehicles DROP COLUMN sandbox_provider_id;
ALTER TABLE api_clients DROP COLUMN sandbox;
