-- 0010: fence results and checkpoints with the claim's token, not only its attempt number.
--
-- Workers commit claims without waiting for the WAL flush (synchronous_commit=off, see store.db.create_pool). A
-- database crash can roll back a claim that its worker already acted on; the step returns to 'enqueued' with the
-- old attempt count, and the next claimer gets the same attempt number. The attempt check alone would then let the
-- first, stale worker's result through. Every claim now writes a fresh random `claim_token` into the metadata of
-- its in_progress transition, and a change that names `expected_claim_token` in its metadata only applies while the
-- step's current transition carries that token (the key is checked, not written). The signature is unchanged, so
-- every caller keeps working; callers that name no token are not fenced by one. ROWS 20 as in 0008.

CREATE OR REPLACE FUNCTION tasker.step_transition_many(
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
LANGUAGE plpgsql VOLATILE ROWS 20 AS $fn$
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
        WHERE (i.expected_attempts IS NULL OR COALESCE(s.attempts, 0) = i.expected_attempts)
          -- the claim fence: only the holder of the claim that wrote this transition may move the step on
          AND (NOT (i.metadata ? 'expected_claim_token')
               OR t.metadata ->> 'claim_token' = i.metadata ->> 'expected_claim_token')
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
               (i.metadata - 'retry_delay_ms' - 'expected_claim_token')
                   || jsonb_build_object('event', h.hop ->> 'event')
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
