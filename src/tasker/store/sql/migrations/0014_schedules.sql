-- Schedules: cron expressions that create tasks (README "Schedules"). Outside schema `tasker`, which stays exactly
-- tasker-core's.
CREATE SCHEMA IF NOT EXISTS tasker_ext;

CREATE TABLE tasker_ext.schedules (
    schedule_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    name varchar(128) NOT NULL,
    cron varchar(256) NOT NULL,
    timezone varchar(64) NOT NULL DEFAULT 'UTC',
    -- the task request, the fields of POST /v1/tasks that make sense for a repeated task
    namespace varchar(64) NOT NULL,
    task_name varchar(64) NOT NULL,
    version varchar(16) NOT NULL DEFAULT '1.0.0',
    context jsonb NOT NULL DEFAULT '{}'::jsonb,
    initiator varchar(128),
    source_system varchar(128),
    reason varchar(500),
    tags jsonb NOT NULL DEFAULT '[]'::jsonb,
    priority integer NOT NULL DEFAULT 0,
    enabled boolean NOT NULL DEFAULT true,
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    last_task_uuid uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_name_unique UNIQUE (name)
);

-- The scheduler's two reads: what is due now (locked, SKIP LOCKED) and when the next one is due (its sleep).
CREATE INDEX idx_schedules_due ON tasker_ext.schedules (next_run_at) WHERE enabled;

-- One row per tick that fired. The UNIQUE key is the exactly-once guard of last resort: whatever goes wrong with
-- the row locks, a second creation for the same tick fails here and rolls its task back with it.
-- No foreign key to tasker.tasks: retention deletes tasks, while the run keeps saying what was created.
CREATE TABLE tasker_ext.schedule_runs (
    schedule_run_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    schedule_uuid uuid NOT NULL REFERENCES tasker_ext.schedules (schedule_uuid) ON DELETE CASCADE,
    scheduled_for timestamptz NOT NULL,
    -- set when ticks were missed (all orchestrators down): the first missed tick; the ticks from it up to
    -- scheduled_for were folded into this one run
    missed_since timestamptz,
    task_uuid uuid,
    -- why no task was created (the template was removed, the context no longer matches its schema, ...)
    error text,
    processor_uuid uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedule_runs_one_per_tick UNIQUE (schedule_uuid, scheduled_for)
);

-- retention deletes old runs by time
CREATE INDEX idx_schedule_runs_created ON tasker_ext.schedule_runs (created_at);

COMMENT ON TABLE tasker_ext.schedules IS 'Cron schedules that create tasks; next_run_at is the next tick to fire';
COMMENT ON TABLE tasker_ext.schedule_runs IS 'One row per fired schedule tick and the task it created';
