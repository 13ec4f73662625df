-- 0006: the two guarded transitions as plpgsql functions.
--
-- They were single statements sent by the store; as functions their plans are cached by the server (a SQL
-- statement this size costs more to plan than to run), and other statements can call them: a worker claims steps
-- and reads their context in one statement, and stores results, sends the result messages and deletes the step
-- messages in another, each one round trip. The store's named statements `task_transition_many` and
-- `step_transition_many` call these functions; the semantics are unchanged.

-- Task compare-and-swap:
-- Compare-and-swap for many tasks in one statement. Each input names a task, the state it must be in now, and a
-- path of hops ({state, event}) to write as rows; only the last row becomes most_recent. The current row is
-- locked first, so a concurrent writer waits and then finds it no longer most_recent: a task that is not in the
-- expected state yields no output row, and the caller reports the lost race. Entering 'complete' sets
-- tasks.complete and tasks.completed_at.
CREATE FUNCTION tasker.task_transition_many(
    p_task_uuids uuid[],
    p_from_states text[],
    p_paths jsonb[],
    p_metadata jsonb[]
)
RETURNS TABLE (task_uuid uuid, to_state varchar, task_transition_uuid uuid)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT *
        FROM unnest(p_task_uuids, p_from_states, p_paths, p_metadata)
             AS i(task_uuid, from_state, path, metadata)
    ),
    locked AS (
        SELECT t.task_transition_uuid
        FROM tasker.task_transitions t
        JOIN input i ON i.task_uuid = t.task_uuid AND t.most_recent AND t.to_state = i.from_state
        FOR UPDATE OF t
    ),
    flipped AS (
        UPDATE tasker.task_transitions t
        SET most_recent = false, updated_at = timezone('utc', now())
        FROM locked l
        WHERE t.task_transition_uuid = l.task_transition_uuid AND t.most_recent
        RETURNING t.task_uuid, t.sort_key, t.to_state
    ),
    hops AS (
        SELECT f.task_uuid,
               h.hop ->> 'state' AS to_state,
               COALESCE(lag(h.hop ->> 'state') OVER (PARTITION BY f.task_uuid ORDER BY h.n), f.to_state) AS from_state,
               i.metadata || jsonb_build_object('event', h.hop ->> 'event') AS metadata,
               f.sort_key + h.n::int AS sort_key,
               h.n = jsonb_array_length(i.path) AS most_recent
        FROM flipped f
        JOIN input i ON i.task_uuid = f.task_uuid
        CROSS JOIN LATERAL jsonb_array_elements(i.path) WITH ORDINALITY AS h(hop, n)
    ),
    inserted AS (
        INSERT INTO tasker.task_transitions (task_uuid, to_state, from_state, metadata, sort_key, most_recent,
                                             processor_uuid)
        SELECT task_uuid, to_state, from_state, metadata, sort_key, most_recent,
               NULLIF(metadata ->> 'processor_uuid', '')::uuid
        FROM hops
        RETURNING task_uuid, to_state, most_recent, task_transition_uuid
    ),
    updated AS (
        UPDATE tasker.tasks t
        SET complete = t.complete OR n.to_state = 'complete',
            completed_at = CASE WHEN n.to_state = 'complete' THEN timezone('utc', now()) ELSE t.completed_at END,
            updated_at = timezone('utc', now())
        FROM inserted n
        WHERE n.most_recent AND t.task_uuid = n.task_uuid
        RETURNING t.task_uuid
    ),
    notified AS (
        -- signal-only: clients waiting for a task (task wait, benchmarks) learn that it settled
        SELECT pg_notify('tasker_task_settled', n.task_uuid::text)
        FROM inserted n
        WHERE n.most_recent
          AND n.to_state IN ('complete', 'error', 'cancelled', 'resolved_manually', 'blocked_by_failures')
    )
    SELECT n.task_uuid, n.to_state, n.task_transition_uuid
    FROM inserted n
    JOIN updated u ON u.task_uuid = n.task_uuid
    WHERE n.most_recent AND (SELECT count(*) FROM notified) >= 0;
END
$fn$;

-- Step compare-and-swap:
-- Compare-and-swap for many steps in one statement, with the denormalised columns and the result audit row.
-- Each input names a step, the state it must be in now (and, when given, the attempt count its claimer saw, so a
-- worker whose lease ran out cannot overwrite its successor), a path of hops ({state, event}), and the column
-- effects the state machine computed for that path. Steps not in the expected state yield no output row.
CREATE FUNCTION tasker.step_transition_many(
    p_step_uuids uuid[],
    p_from_states text[],
    p_paths jsonb[],
    p_metadata jsonb[],
    p_expected_attempts int[],
    p_in_process bool[],
    p_processed bool[],
    p_stamp_processed_at bool[],
    p_count_attempt bool[],
    p_reset_attempts bool[],
    p_results jsonb[],
    p_backoff_seconds int[],
    p_audit_success bool[],
    p_worker_uuids uuid[],
    p_correlation_ids uuid[],
    p_execution_ms bigint[]
)
RETURNS TABLE (workflow_step_uuid uuid, task_uuid uuid, attempts integer, to_state varchar,
               workflow_step_transition_uuid uuid)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT *
        FROM unnest(
            p_step_uuids, p_from_states, p_paths, p_metadata,
            p_expected_attempts, p_in_process, p_processed,
            p_stamp_processed_at, p_count_attempt, p_reset_attempts,
            p_results, p_backoff_seconds, p_audit_success,
            p_worker_uuids, p_correlation_ids, p_execution_ms
        ) AS i(step_uuid, from_state, path, metadata, expected_attempts, in_process, processed, stamp_processed_at,
               count_attempt, reset_attempts, results, backoff_seconds, audit_success, worker_uuid, correlation_id,
               execution_ms)
    ),
    locked AS (
        SELECT t.workflow_step_transition_uuid
        FROM tasker.workflow_step_transitions t
        JOIN input i ON i.step_uuid = t.workflow_step_uuid AND t.most_recent AND t.to_state = i.from_state
        JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
        WHERE i.expected_attempts IS NULL OR COALESCE(s.attempts, 0) = i.expected_attempts
        FOR UPDATE OF t
    ),
    flipped AS (
        UPDATE tasker.workflow_step_transitions t
        SET most_recent = false, updated_at = timezone('utc', now())
        FROM locked l
        WHERE t.workflow_step_transition_uuid = l.workflow_step_transition_uuid AND t.most_recent
        RETURNING t.workflow_step_uuid, t.sort_key, t.to_state
    ),
    hops AS (
        SELECT f.workflow_step_uuid,
               h.hop ->> 'state' AS to_state,
               COALESCE(lag(h.hop ->> 'state') OVER (PARTITION BY f.workflow_step_uuid ORDER BY h.n), f.to_state)
                   AS from_state,
               -- a retry delay becomes an absolute retry_at on the database clock (read by step readiness)
               (i.metadata - 'retry_delay_ms') || jsonb_build_object('event', h.hop ->> 'event')
                   || CASE WHEN h.hop ->> 'state' = 'waiting_for_retry' AND i.metadata ? 'retry_delay_ms'
                           THEN jsonb_build_object('retry_at', timezone('utc', now())
                                + make_interval(secs => (i.metadata ->> 'retry_delay_ms')::float8 / 1000.0))
                           ELSE '{}'::jsonb END AS metadata,
               f.sort_key + h.n::int AS sort_key,
               h.n = jsonb_array_length(i.path) AS most_recent
        FROM flipped f
        JOIN input i ON i.step_uuid = f.workflow_step_uuid
        CROSS JOIN LATERAL jsonb_array_elements(i.path) WITH ORDINALITY AS h(hop, n)
    ),
    inserted AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, from_state, metadata, sort_key,
                                                      most_recent)
        SELECT workflow_step_uuid, to_state, from_state, metadata, sort_key, most_recent FROM hops
        RETURNING workflow_step_uuid, workflow_step_transition_uuid, to_state, most_recent
    ),
    updated AS (
        UPDATE tasker.workflow_steps s
        SET in_process = COALESCE(i.in_process, s.in_process),
            processed = COALESCE(i.processed, s.processed),
            processed_at = CASE WHEN i.stamp_processed_at THEN timezone('utc', now()) ELSE s.processed_at END,
            attempts = CASE WHEN i.reset_attempts THEN 0
                            WHEN i.count_attempt THEN COALESCE(s.attempts, 0) + 1
                            ELSE s.attempts END,
            last_attempted_at = CASE WHEN i.count_attempt THEN timezone('utc', now()) ELSE s.last_attempted_at END,
            results = COALESCE(i.results, s.results),
            backoff_request_seconds = CASE WHEN i.reset_attempts THEN NULL
                                           ELSE COALESCE(i.backoff_seconds, s.backoff_request_seconds) END,
            updated_at = timezone('utc', now())
        FROM inserted n
        JOIN input i ON i.step_uuid = n.workflow_step_uuid
        WHERE n.most_recent AND s.workflow_step_uuid = n.workflow_step_uuid
        RETURNING s.workflow_step_uuid, s.task_uuid, s.attempts
    ),
    audited AS (
        INSERT INTO tasker.workflow_step_result_audit (workflow_step_uuid, workflow_step_transition_uuid, task_uuid,
                                                       worker_uuid, correlation_id, success, execution_time_ms)
        SELECT u.workflow_step_uuid, n.workflow_step_transition_uuid, u.task_uuid, i.worker_uuid, i.correlation_id,
               i.audit_success, i.execution_ms
        FROM updated u
        JOIN inserted n ON n.workflow_step_uuid = u.workflow_step_uuid AND n.most_recent
        JOIN input i ON i.step_uuid = u.workflow_step_uuid
        WHERE i.audit_success IS NOT NULL
        RETURNING workflow_step_uuid
    )
    SELECT u.workflow_step_uuid, u.task_uuid, u.attempts, n.to_state, n.workflow_step_transition_uuid
    FROM updated u
    JOIN inserted n ON n.workflow_step_uuid = u.workflow_step_uuid AND n.most_recent;
END
$fn$;
