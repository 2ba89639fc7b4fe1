-- +goose Up
-- A failed push attempt is shown to the provider as a stable category
-- (onboarding/webhooks/failure.go), never as Go's error text, which names
-- the addresses we resolved and dialled and our resolver. Attempts stored
-- before keep no such text either; the originals are not kept (the server
-- log had them).
UPDATE webhook_attempts SET error = CASE
        WHEN error ~* 'not allowed|not an IP address' THEN 'destination not allowed'
        WHEN error ~* 'no such host|lookup |server misbehaving' THEN 'DNS lookup failed'
        WHEN error ~* 'no answer within|timeout|deadline exceeded' THEN 'timeout'
        WHEN error ~* 'connection refused' THEN 'connection refused'
        WHEN error ~* 'connection reset|broken pipe' THEN 'connection reset'
        WHEN error ~* 'unreachable' THEN 'host unreachable'
        WHEN error ~* 'x509|certificate' THEN 'TLS certificate not valid'
        WHEN error ~* 'tls' THEN 'TLS error'
        WHEN error ~* 'EOF' THEN 'connection closed before an answer'
        WHEN error ~* '^signing' THEN 'signing failed'
        WHEN error ~* '^request:' THEN 'invalid URL'
        ELSE 'connection failed' END
WHERE error <> '' AND error !~ '^HTTP [0-9]{3}$' AND error NOT IN ('connection refused', 'connection reset',
    'connection closed before an answer', 'host unreachable', 'DNS lookup failed', 'destination not allowed', 'timeout',
    'TLS error', 'TLS certificate not valid', 'invalid URL', 'signing failed', 'connection failed');

UPDATE webhook_deliveries SET last_error = CASE
        WHEN last_error ~* 'not allowed|not an IP address' THEN 'destination not allowed'
        WHEN last_error ~* 'no such host|lookup |server misbehaving' THEN 'DNS lookup failed'
        WHEN last_error ~* 'no answer within|timeout|deadline exceeded' THEN 'timeout'
        WHEN last_error ~* 'connection refused' THEN 'connection refused'
        WHEN last_error ~* 'connection reset|broken pipe' THEN 'connection reset'
        WHEN last_error ~* 'unreachable' THEN 'host unreachable'
        WHEN last_error ~* 'x509|certificate' THEN 'TLS certificate not valid'
        WHEN last_error ~* 'tls' THEN 'TLS error'
        WHEN last_error ~* 'EOF' THEN 'connection closed before an answer'
        WHEN last_error ~* '^signing' THEN 'signing failed'
        WHEN last_error ~* '^request:' THEN 'invalid URL'
        ELSE 'connection failed' END
WHERE last_error <> '' AND last_error !~ '^HTTP [0-9]{3}$' AND last_error NOT IN ('connection refused', 'connection reset',
    'connection closed before an answer', 'host unreachable', 'DNS lookup failed', 'destination not allowed', 'timeout',
    'TLS error', 'TLS certificate not valid', 'invalid URL', 'signing failed', 'connection failed');

-- +goose Down
-- The original texts are gone; the categories stay.
SELECT 1;
