-- Retention: finished tasks pruned with `tasker db prune --archive` leave one document each here (README
-- "Retention").
CREATE SCHEMA IF NOT EXISTS tasker_ext;

CREATE TABLE tasker_ext.task_archive (
    task_uuid uuid PRIMARY KEY,
    namespace varchar(64) NOT NULL,
    name varchar(64) NOT NULL,
    version varchar(16) NOT NULL,
    final_state varchar(32) NOT NULL,
    -- when the task entered its final state (its last transition), UTC like the tasker tables
    finished_at timestamp NOT NULL,
    -- the task row with its steps (each with its transitions and result audit), edges, transitions and DLQ
    -- entries: everything the prune deleted, as one document
    document jsonb NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_task_archive_finished ON tasker_ext.task_archive (finished_at);
CREATE INDEX idx_task_archive_template ON tasker_ext.task_archive (namespace, name, version);

COMMENT ON TABLE tasker_ext.task_archive IS 'Finished tasks removed by retention, one jsonb document per task';
