-- +goose Up
-- Attachments of outbox e-mails (jobs.Message.Attachments), written in the
-- same transaction as their e-mail and deleted with it (outbox.purge).
-- size and sha256 are computed by the database from the stored bytes, so
-- the admin outbox can list them without reading the content.
CREATE TABLE email_outbox_attachments (
    email_id     BIGINT NOT NULL REFERENCES email_outbox(id) ON DELETE CASCADE,
    position     INT NOT NULL CHECK (position > 0),
    filename     TEXT NOT NULL CHECK (filename <> '' AND length(filename) <= 255),
    content_type TEXT NOT NULL CHECK (content_type <> ''),
    content      BYTEA NOT NULL,
    size         BIGINT GENERATED ALWAYS AS (octet_length(content)) STORED,
    sha256       TEXT GENERATED ALWAYS AS (encode(sha256(content), 'hex')) STORED,
    PRIMARY KEY (email_id, position)
);

-- +goose Down
DROP TABLE email_outbox_attachments;
