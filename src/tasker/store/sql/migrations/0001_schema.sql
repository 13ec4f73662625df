-- 0001_schema: schema `tasker` exactly as the seed document describes it.
--
-- Tables are created in dependency order; constraints that carry invariants (one current transition per entity,
-- valid state names, one open DLQ investigation per task, unique task identity) live here, not in Python.

CREATE SCHEMA IF NOT EXISTS tasker;

-- UUID v7 (time-ordered) keys. PostgreSQL 18 has uuidv7() built in; older servers get a plpgsql version that puts
-- the millisecond Unix time in the first 48 bits and random bits elsewhere.
DO $do$
BEGIN
    IF current_setting('server_version_num')::int >= 180000 THEN
        EXECUTE $fn$
            CREATE OR REPLACE FUNCTION public.uuid_generate_v7() RETURNS uuid
            LANGUAGE sql VOLATILE PARALLEL SAFE AS 'SELECT uuidv7()'
        $fn$;
    ELSE
        EXECUTE $fn$
            CREATE OR REPLACE FUNCTION public.uuid_generate_v7() RETURNS uuid
            LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $body$
            DECLARE
                bytes bytea := uuid_send(gen_random_uuid());
                millis bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
            BEGIN
                bytes := overlay(bytes PLACING substring(int8send(millis) FROM 3) FROM 1 FOR 6);
                -- version nibble 0111; the variant bits of gen_random_uuid() (10xx) are already right.
                bytes := set_byte(bytes, 6, (b'0111' || get_byte(bytes, 6)::bit(4))::bit(8)::int);
                RETURN encode(bytes, 'hex')::uuid;
            END
            $body$
        $fn$;
    END IF;
END
$do$;

CREATE TYPE tasker.dlq_reason AS ENUM (
    'staleness_timeout', 'max_retries_exceeded', 'dependency_cycle_detected', 'worker_unavailable', 'manual_dlq'
);
CREATE TYPE tasker.dlq_resolution_status AS ENUM (
    'pending', 'manually_resolved', 'permanently_failed', 'cancelled'
);

CREATE TABLE tasker.task_namespaces (
    task_namespace_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    name varchar(64) NOT NULL UNIQUE,
    description varchar(255),
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now())
);

CREATE TABLE tasker.named_tasks (
    named_task_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    task_namespace_uuid uuid NOT NULL REFERENCES tasker.task_namespaces (task_namespace_uuid),
    name varchar(64) NOT NULL,
    description varchar(255),
    version varchar(16) NOT NULL DEFAULT '0.1.0',
    configuration jsonb DEFAULT '{}'::jsonb,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT named_tasks_namespace_name_version_unique UNIQUE (task_namespace_uuid, name, version)
);

CREATE TABLE tasker.named_steps (
    named_step_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    name varchar(128) NOT NULL UNIQUE,
    description varchar(255),
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now())
);

CREATE TABLE tasker.named_tasks_named_steps (
    ntns_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    named_task_uuid uuid NOT NULL REFERENCES tasker.named_tasks (named_task_uuid),
    named_step_uuid uuid NOT NULL REFERENCES tasker.named_steps (named_step_uuid),
    default_retryable boolean NOT NULL DEFAULT true,
    default_max_attempts integer NOT NULL DEFAULT 3,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT named_tasks_named_steps_unique UNIQUE (named_task_uuid, named_step_uuid)
);

CREATE TABLE tasker.tasks (
    task_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    named_task_uuid uuid NOT NULL REFERENCES tasker.named_tasks (named_task_uuid),
    complete boolean NOT NULL DEFAULT false,
    requested_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    completed_at timestamp,
    initiator varchar(128),
    source_system varchar(128),
    reason varchar(128),
    tags jsonb,
    context jsonb,
    identity_hash varchar(128) NOT NULL,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    priority integer NOT NULL DEFAULT 0,
    correlation_id uuid NOT NULL,
    parent_correlation_id uuid
);

CREATE TABLE tasker.workflow_steps (
    workflow_step_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks (task_uuid),
    named_step_uuid uuid NOT NULL REFERENCES tasker.named_steps (named_step_uuid),
    retryable boolean NOT NULL DEFAULT true,
    max_attempts integer DEFAULT 3,
    in_process boolean NOT NULL DEFAULT false,
    processed boolean NOT NULL DEFAULT false,
    processed_at timestamp,
    attempts integer,
    last_attempted_at timestamp,
    backoff_request_seconds integer,
    inputs jsonb,
    results jsonb,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    priority integer NOT NULL DEFAULT 0,
    checkpoint jsonb,
    -- one step per named step per task: makes dynamic step creation idempotent
    CONSTRAINT workflow_steps_task_named_step_unique UNIQUE (task_uuid, named_step_uuid)
);

CREATE TABLE tasker.workflow_step_edges (
    workflow_step_edge_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    from_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps (workflow_step_uuid),
    to_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps (workflow_step_uuid),
    name varchar NOT NULL,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT workflow_step_edges_unique UNIQUE (from_step_uuid, to_step_uuid, name),
    CONSTRAINT workflow_step_edges_no_self_loop CHECK (from_step_uuid <> to_step_uuid)
);

CREATE TABLE tasker.task_transitions (
    task_transition_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks (task_uuid),
    to_state varchar NOT NULL,
    from_state varchar,
    metadata jsonb DEFAULT '{}'::jsonb,
    sort_key integer NOT NULL,
    most_recent boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    processor_uuid uuid,
    transition_metadata jsonb DEFAULT '{}'::jsonb,
    CONSTRAINT task_transitions_to_state_valid CHECK (to_state IN (
        'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results',
        'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures',
        'complete', 'error', 'cancelled', 'resolved_manually')),
    CONSTRAINT task_transitions_from_state_valid CHECK (from_state IS NULL OR from_state IN (
        'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results',
        'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures',
        'complete', 'error', 'cancelled', 'resolved_manually'))
);

CREATE TABLE tasker.workflow_step_transitions (
    workflow_step_transition_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    workflow_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps (workflow_step_uuid),
    to_state varchar NOT NULL,
    from_state varchar,
    metadata jsonb DEFAULT '{}'::jsonb,
    sort_key integer NOT NULL,
    most_recent boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT workflow_step_transitions_to_state_valid CHECK (to_state IN (
        'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration',
        'waiting_for_retry', 'complete', 'error', 'cancelled', 'resolved_manually')),
    CONSTRAINT workflow_step_transitions_from_state_valid CHECK (from_state IS NULL OR from_state IN (
        'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration',
        'waiting_for_retry', 'complete', 'error', 'cancelled', 'resolved_manually'))
);

CREATE TABLE tasker.workflow_step_result_audit (
    workflow_step_result_audit_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    workflow_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps (workflow_step_uuid),
    workflow_step_transition_uuid uuid NOT NULL
        REFERENCES tasker.workflow_step_transitions (workflow_step_transition_uuid),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks (task_uuid),
    recorded_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    worker_uuid uuid,
    correlation_id uuid,
    success boolean NOT NULL,
    execution_time_ms bigint,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT workflow_step_result_audit_unique UNIQUE (workflow_step_uuid, workflow_step_transition_uuid)
);

CREATE TABLE tasker.tasks_dlq (
    dlq_entry_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks (task_uuid),
    original_state varchar(50) NOT NULL,
    dlq_reason tasker.dlq_reason NOT NULL,
    dlq_timestamp timestamp NOT NULL DEFAULT timezone('utc', now()),
    resolution_status tasker.dlq_resolution_status NOT NULL DEFAULT 'pending',
    resolution_timestamp timestamp,
    resolution_notes text,
    resolved_by varchar(255),
    task_snapshot jsonb NOT NULL,
    metadata jsonb,
    created_at timestamp NOT NULL DEFAULT timezone('utc', now()),
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now())
);

COMMENT ON SCHEMA tasker IS 'The Tasker database uses PostgreSQL with the tasker schema. All tables use UUID v7 '
    'primary keys for time-ordered identifiers. The schema supports PostgreSQL 15 to 17 (a plpgsql '
    'uuid_generate_v7()) and PostgreSQL 18+ (a wrapper over the native uuidv7() function).';

COMMENT ON TABLE tasker.task_namespaces IS 'Multi-tenant namespace isolation for task definitions';
COMMENT ON TABLE tasker.named_tasks IS 'Reusable task templates with versioned configuration';
COMMENT ON TABLE tasker.named_steps IS 'Reusable step definitions referenced by task templates';
COMMENT ON TABLE tasker.named_tasks_named_steps IS 'Join table linking task templates to their step definitions';
COMMENT ON TABLE tasker.tasks IS 'Task instances created from templates with execution context';
COMMENT ON TABLE tasker.workflow_steps IS 'Individual step instances within a task execution';
COMMENT ON TABLE tasker.workflow_step_edges IS 'Directed graph of step dependencies (DAG edges)';
COMMENT ON TABLE tasker.task_transitions IS 'Event-sourced state change history for tasks (12-state machine)';
COMMENT ON TABLE tasker.workflow_step_transitions IS
    'Event-sourced state change history for steps (10-state machine)';
COMMENT ON TABLE tasker.workflow_step_result_audit IS 'Lightweight audit trail for SOC2 compliance';
COMMENT ON TABLE tasker.tasks_dlq IS 'Dead Letter Queue for stuck task investigation and resolution';

-- ---------------------------------------------------------------------------------------------------------------
-- Indexes. Each says which access path it serves.
-- ---------------------------------------------------------------------------------------------------------------

-- The concurrency guard: at most one current transition per task and per step.
CREATE UNIQUE INDEX idx_task_transitions_one_most_recent
    ON tasker.task_transitions (task_uuid) WHERE most_recent;
CREATE UNIQUE INDEX idx_step_transitions_one_most_recent
    ON tasker.workflow_step_transitions (workflow_step_uuid) WHERE most_recent;
-- current state by state (finaliser, staleness sweep, dashboards)
CREATE INDEX idx_task_transitions_current_state
    ON tasker.task_transitions (to_state, task_uuid) WHERE most_recent;
CREATE INDEX idx_step_transitions_current_state
    ON tasker.workflow_step_transitions (to_state, workflow_step_uuid) WHERE most_recent;
-- history in order (audit routes, sort_key = max + 1)
CREATE INDEX idx_task_transitions_sort ON tasker.task_transitions (task_uuid, sort_key);
CREATE INDEX idx_step_transitions_sort ON tasker.workflow_step_transitions (workflow_step_uuid, sort_key);

-- identity deduplication
CREATE UNIQUE INDEX idx_tasks_identity_hash ON tasker.tasks (identity_hash);
CREATE INDEX idx_tasks_named_task ON tasker.tasks (named_task_uuid);
CREATE INDEX idx_tasks_correlation_id ON tasker.tasks (correlation_id);
CREATE INDEX idx_tasks_requested_at ON tasker.tasks (requested_at);
-- incomplete tasks by priority (next-ready-task scan)
CREATE INDEX idx_tasks_incomplete_priority
    ON tasker.tasks (priority DESC, created_at) INCLUDE (named_task_uuid) WHERE NOT complete;

-- steps of a task, and the readiness filter on unprocessed steps
CREATE INDEX idx_workflow_steps_task_unprocessed
    ON tasker.workflow_steps (task_uuid) INCLUDE (workflow_step_uuid, in_process, attempts, max_attempts, retryable)
    WHERE NOT processed;
CREATE INDEX idx_workflow_steps_named_step ON tasker.workflow_steps (named_step_uuid);

-- parents of a step (readiness), children of a step (enqueue after completion)
CREATE INDEX idx_step_edges_to ON tasker.workflow_step_edges (to_step_uuid);
CREATE INDEX idx_step_edges_from ON tasker.workflow_step_edges (from_step_uuid);

CREATE INDEX idx_step_audit_step ON tasker.workflow_step_result_audit (workflow_step_uuid, recorded_at);
CREATE INDEX idx_step_audit_task ON tasker.workflow_step_result_audit (task_uuid);
CREATE INDEX idx_step_audit_correlation
    ON tasker.workflow_step_result_audit (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE INDEX idx_named_tasks_namespace ON tasker.named_tasks (task_namespace_uuid);

-- one open investigation per task; resolved entries stay as history
CREATE UNIQUE INDEX idx_tasks_dlq_one_pending_per_task
    ON tasker.tasks_dlq (task_uuid) WHERE resolution_status = 'pending';
CREATE INDEX idx_tasks_dlq_status_time ON tasker.tasks_dlq (resolution_status, dlq_timestamp);
CREATE INDEX idx_tasks_dlq_reason ON tasker.tasks_dlq (dlq_reason);
