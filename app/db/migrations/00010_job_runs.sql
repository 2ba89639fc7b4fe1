-- +goose Up
-- Run history of the job scheduler (jobs.Scheduler). One row per run; a
-- scheduled tick is claimed by inserting (job, scheduled_for), which is
-- unique, so replicas firing the same tick produce a single run.
CREATE TABLE job_runs (
    id               BIGSERIAL PRIMARY KEY,
    job              TEXT NOT NULL,
    trigger          TEXT NOT NULL CHECK (trigger IN ('schedule','ui','cli')),
    actor_kind       TEXT NOT NULL DEFAULT 'system',
    actor_id         BIGINT,
    actor_label      TEXT NOT NULL DEFAULT '',
    scheduled_for    TIMESTAMPTZ,                      -- the cron tick (scheduled runs only)
    instance         TEXT NOT NULL DEFAULT '',         -- host:pid of the process that ran it
    lock_pid         INT,                              -- backend pid of the session holding the job's advisory lock
    started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    outcome          TEXT NOT NULL CHECK (outcome IN ('running','succeeded','failed','skipped','abandoned')),
    error            TEXT NOT NULL DEFAULT '',
    figures          JSONB NOT NULL DEFAULT '{}',
    progress_done    BIGINT NOT NULL DEFAULT 0,
    progress_total   BIGINT NOT NULL DEFAULT 0,
    progress_message TEXT NOT NULL DEFAULT '',
    CHECK ((trigger = 'schedule') = (scheduled_for IS NOT NULL)),
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);
CREATE UNIQUE INDEX job_runs_tick_key ON job_runs (job, scheduled_for) WHERE scheduled_for IS NOT NULL;
CREATE INDEX job_runs_job_idx ON job_runs (job, id DESC);
CREATE INDEX job_runs_running_idx ON job_runs (job) WHERE outcome = 'running';

-- +goose Down
DROP TABLE job_runs;
