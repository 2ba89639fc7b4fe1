-- +goose Up
-- An audit entry's summary as a printf format and its arguments (issue 18),
-- so the audit trail says it in its reader's language. summary keeps the
-- English text and stays the one the hash chain covers; a page shows the
-- translation only when the format and arguments give back exactly that
-- text, so nothing outside the chain can change what an entry says.
-- Entries written before keep their English summary.
ALTER TABLE audit_entries ADD COLUMN summary_format TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_entries ADD COLUMN summary_args JSONB NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE audit_entries DROP COLUMN summary_args;
ALTER TABLE audit_entries DROP COLUMN summary_format;
