-- 0018: a worker's result store, as one function that can also complete the steps it stores and move their tasks
-- on.
--
-- The fast path used to store a result (in_progress → enqueued_for_orchestration) in one statement, wait for the
-- answer, then complete the step (→ complete) in a second compare-and-swap: a round trip and a statement per step
-- for a decision there is nothing to decide about. A standard step's success always completes it once its task is
-- locked and has not ended (engine.results.step_change), so the store now takes that hop too, for the results the
-- caller marks (`p_complete`): their compare-and-swap follows the two-hop path in_progress →
-- enqueued_for_orchestration → complete, the second hop with the completer's own metadata, and the effects of both
-- (`p_complete_effects`, folded by model.machines). The rows written are the same as before: the
-- enqueued_for_orchestration transition with its audit row, then the complete transition. For that,
-- tasker.step_transition_many (below) lets a hop carry its own metadata and ties the audit row to a path's first
-- hop (for the single-hop paths of every other caller, the same row as before).
--
-- The statements run one after another, each seeing the one before and every commit made before it began: the
-- task locks first (SKIP LOCKED: never waits), then the tasks' states (a task that ended meanwhile, cancelled,
-- completes nothing), then the store, then the announcements and acknowledgements. Only results whose task this
-- call locked (`here`) are completed; the others are announced on the results queue as before. A result whose
-- store loses is neither announced, acknowledged nor completed.
--
-- The continuation (when the caller passes claim tokens and its queues): a task whose step this call completed is
-- moved on here too when what comes next is plain: the task is in steps_in_process, none of its steps failed, every
-- step ready to run is pending, and something is ready or still running. Then the task stays in steps_in_process
-- (engine.finalizer.goal_state, with no failure) and the ready steps are enqueued: the first ones (one per claim
-- token) claimed for the caller in the same compare-and-swap (enqueued, then in_progress under the token), whose
-- messages, held under a lease, the caller's next statement writes (a statement on the queue's own table keeps its
-- plan; one written here would be planned on every call); the others with a visible message and a wake-up. Any
-- other task (`planned` false) is left to the caller's own planning, in the same transaction. A task in
-- steps_in_process whose steps are all complete (or resolved) is finished here as well: it takes the route to
-- complete (`p_finish_path`). The paths, effects and metadata of these changes come from the caller
-- (store.transitions), so the state machine stays in model.machines; only the rules of engine.finalizer.goal_state
-- for a task with no failed step are written here: something in flight, steps_in_process; every step done, complete.
CREATE FUNCTION tasker.step_result_store_many(
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
    p_execution_ms bigint[],
    p_queues text[],            -- the held step messages, one per result
    p_msg_ids bigint[],
    p_lock_tasks uuid[],        -- per result: its task, when the caller may apply it if the task's lock is free
                                -- (NULL otherwise)
    p_results_queue text,
    p_results_channel text,
    p_complete bool[],          -- of those, the ones whose step completes with its result (standard steps)
    p_complete_metadata jsonb[],
    p_complete_path jsonb,      -- the completion's hop, appended to the result's (store.transitions)
    p_complete_effects bool[],  -- store and completion together: in_process, processed, stamp_processed_at,
                                -- count_attempt, reset_attempts
    p_plan_namespaces text[],   -- the continuation: the caller's namespaces, their queues and wake-up channels
    p_plan_queues text[],
    p_plan_channels text[],
    p_claim_tokens text[],      -- one per step the caller can take now (its free slots)
    p_claim_metadata jsonb,     -- the claims' metadata (the claimer), beside the token and the correlation id
    p_enqueue_metadata jsonb,   -- an enqueue's metadata (the processor), beside the correlation id
    p_lease_seconds int,
    p_enqueue_path jsonb,       -- pending → enqueued, and pending → enqueued → in_progress, with their effects
    p_enqueue_effects bool[],
    p_keep_path jsonb,
    p_keep_effects bool[],
    p_finish_path jsonb         -- a task's route from steps_in_process to complete
)
RETURNS TABLE (workflow_step_uuid uuid, here boolean, completed boolean, planned boolean, finished boolean,
               sent bigint, acked bigint,
               next_step_uuid uuid, next_queue text, next_claim_token text)
LANGUAGE plpgsql VOLATILE ROWS 20 AS $fn$
#variable_conflict use_column
DECLARE
    v_locked uuid[];
    v_sent bigint := 0;
    v_acked bigint := 0;
    v_completed uuid[] := '{}';
    v_group record;
    -- the stored results, one element each (a result whose store lost is not among them)
    v_steps uuid[];
    v_tasks uuid[];
    v_queues text[];
    v_msg_ids bigint[];
    v_correlations uuid[];
    v_here bool[];
    v_completing uuid[];
    -- the store's compare-and-swap: per result, its path and effects (with the completion, or without)
    v_paths jsonb[];
    v_in_process bool[];
    v_processed bool[];
    v_stamp_processed_at bool[];
    v_count_attempt bool[];
    v_reset_attempts bool[];
    -- the continuation: the tasks planned here, then the steps they enqueue (one element each)
    v_planned uuid[] := '{}';
    v_finished uuid[] := '{}';
    v_next_steps uuid[];
    v_next_tasks uuid[];
    v_next_queues text[];
    v_next_tokens text[];
    v_queue record;
BEGIN
    v_locked := ARRAY(
        SELECT t.task_uuid FROM tasker.tasks t WHERE t.task_uuid = ANY(p_lock_tasks) FOR NO KEY UPDATE SKIP LOCKED
    );

    -- the results that complete their step: marked, their task locked here, and not ended
    v_completing := ARRAY(
        SELECT m.step_uuid
        FROM unnest(p_step_uuids, p_lock_tasks, p_complete) AS m(step_uuid, task_uuid, completes)
        LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = m.task_uuid AND tt.most_recent
        WHERE m.completes AND m.task_uuid = ANY(v_locked)
          AND COALESCE(tt.to_state, 'pending') NOT IN ('cancelled', 'complete', 'resolved_manually')
    );
    SELECT array_agg(CASE WHEN c.completes THEN m.path || jsonb_build_array((p_complete_path -> 0)
                              || jsonb_build_object('metadata', m.complete_metadata)) ELSE m.path END ORDER BY m.n),
           array_agg(CASE WHEN c.completes THEN p_complete_effects[1] ELSE m.in_process END ORDER BY m.n),
           array_agg(CASE WHEN c.completes THEN p_complete_effects[2] ELSE m.processed END ORDER BY m.n),
           array_agg(CASE WHEN c.completes THEN p_complete_effects[3] ELSE m.stamp_processed_at END ORDER BY m.n),
           array_agg(CASE WHEN c.completes THEN p_complete_effects[4] ELSE m.count_attempt END ORDER BY m.n),
           array_agg(CASE WHEN c.completes THEN p_complete_effects[5] ELSE m.reset_attempts END ORDER BY m.n)
    INTO v_paths, v_in_process, v_processed, v_stamp_processed_at, v_count_attempt, v_reset_attempts
    FROM unnest(p_step_uuids, p_paths, p_complete_metadata, p_in_process, p_processed, p_stamp_processed_at,
                p_count_attempt, p_reset_attempts) WITH ORDINALITY
         AS m(step_uuid, path, complete_metadata, in_process, processed, stamp_processed_at, count_attempt,
              reset_attempts, n)
    CROSS JOIN LATERAL (SELECT m.step_uuid = ANY(v_completing) AS completes) c;

    SELECT COALESCE(array_agg(s.workflow_step_uuid), '{}'), array_agg(s.task_uuid), array_agg(m.queue),
           array_agg(m.msg_id), array_agg(m.correlation_id), array_agg(m.lock_task IS NOT NULL AND s.task_uuid = ANY(v_locked))
    INTO v_steps, v_tasks, v_queues, v_msg_ids, v_correlations, v_here
    FROM tasker.step_transition_many(
        p_step_uuids, p_from_states, v_paths, p_metadata, p_expected_attempts, v_in_process, v_processed,
        v_stamp_processed_at, v_count_attempt, v_reset_attempts, p_results, p_backoff_seconds, p_audit_success,
        p_worker_uuids, p_correlation_ids, p_execution_ms
    ) s
    JOIN unnest(p_step_uuids, p_queues, p_msg_ids, p_correlation_ids, p_lock_tasks)
         AS m(step_uuid, queue, msg_id, correlation_id, lock_task)
      ON m.step_uuid = s.workflow_step_uuid;
    v_completed := ARRAY(SELECT step FROM unnest(v_steps) AS step WHERE step = ANY(v_completing));
    IF cardinality(v_steps) = 0 THEN
        RETURN;
    END IF;

    -- results for an orchestrator, with one wake-up; none when everything is applied here
    SELECT count(*) INTO v_sent
    FROM (SELECT array_agg(jsonb_build_object('task_uuid', r.task_uuid, 'step_uuid', r.step_uuid,
                                              'correlation_id', r.correlation_id)) AS bodies
          FROM unnest(v_steps, v_tasks, v_correlations, v_here) AS r(step_uuid, task_uuid, correlation_id, here)
          WHERE NOT r.here HAVING count(*) > 0) p
    CROSS JOIN LATERAL pgmq.send_batch(p_results_queue, p.bodies);
    IF v_sent > 0 THEN
        PERFORM pg_notify(p_results_channel, '');
    END IF;

    FOR v_group IN
        SELECT r.queue, array_agg(r.msg_id) AS ids
        FROM unnest(v_queues, v_msg_ids) AS r(queue, msg_id)
        GROUP BY r.queue
    LOOP
        v_acked := v_acked + (SELECT count(*) FROM pgmq.delete(v_group.queue, v_group.ids));
    END LOOP;

    IF p_claim_tokens IS NOT NULL AND cardinality(v_completed) > 0 THEN
        v_planned := ARRAY(
            SELECT c.task_uuid FROM unnest(v_steps, v_tasks) AS c(step_uuid, task_uuid)
            WHERE c.step_uuid = ANY(v_completed)
            EXCEPT  -- a task with a result the caller still has to decide on is planned by the caller
            SELECT c.task_uuid FROM unnest(v_steps, v_tasks, v_here) AS c(step_uuid, task_uuid, here)
            WHERE c.here AND NOT c.step_uuid = ANY(v_completed)
        );
        -- (the readiness function is SQL: given a variable, the planner inlines it into this statement's kept
        -- plan; given a subquery, it would plan the function's body again on every call)
        WITH readiness AS (
            SELECT r.* FROM tasker.get_step_readiness_status_batch(v_planned) r
        ),
        plain AS (
            SELECT r.task_uuid, bool_and(r.current_state IN ('complete', 'resolved_manually')) AS done
            FROM readiness r
            GROUP BY r.task_uuid
            HAVING NOT bool_or(r.current_state = 'error')
               AND NOT bool_or(r.ready_for_execution AND r.current_state <> 'pending')
               AND (bool_or(r.ready_for_execution OR r.current_state IN (
                        'enqueued', 'in_progress', 'enqueued_for_orchestration',
                        'enqueued_as_error_for_orchestration'))
                    OR bool_and(r.current_state IN ('complete', 'resolved_manually')))
        ),
        planned AS (
            SELECT p.task_uuid, t.correlation_id, q.queue, p.done
            FROM plain p
            JOIN tasker.tasks t ON t.task_uuid = p.task_uuid
            JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
            JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
            JOIN unnest(p_plan_namespaces, p_plan_queues) AS q(namespace, queue) ON q.namespace = ns.name
            JOIN tasker.task_transitions tt ON tt.task_uuid = p.task_uuid AND tt.most_recent
            WHERE tt.to_state = 'steps_in_process'
        ),
        next AS (
            SELECT r.workflow_step_uuid, p.task_uuid, p.correlation_id, p.queue,
                   p_claim_tokens[row_number() OVER (ORDER BY r.task_uuid, r.workflow_step_uuid)] AS claim_token
            FROM readiness r
            JOIN planned p ON p.task_uuid = r.task_uuid
            WHERE r.ready_for_execution AND NOT p.done
        ),
        finished AS (
            SELECT f.task_uuid
            FROM (SELECT array_agg(p.task_uuid) AS tasks, array_agg(p_enqueue_metadata
                             || jsonb_build_object('correlation_id', p.correlation_id)) AS metadata, count(*)::int AS n
                  FROM planned p WHERE p.done HAVING count(*) > 0) b
            CROSS JOIN LATERAL tasker.task_transition_many(
                b.tasks, array_fill('steps_in_process'::text, ARRAY[b.n]), array_fill(p_finish_path, ARRAY[b.n]),
                b.metadata
            ) f
        ),
        enqueued AS (
            SELECT c.workflow_step_uuid, c.to_state
            FROM (SELECT array_agg(n.workflow_step_uuid) AS steps,
                         array_agg(CASE WHEN n.claim_token IS NULL THEN p_enqueue_path ELSE p_keep_path END) AS paths,
                         array_agg(CASE WHEN n.claim_token IS NULL
                                        THEN p_enqueue_metadata || jsonb_build_object('correlation_id', n.correlation_id)
                                        ELSE p_enqueue_metadata || p_claim_metadata
                                             || jsonb_build_object('correlation_id', n.correlation_id,
                                                                   'claim_token', n.claim_token) END) AS metadata,
                         array_agg((CASE WHEN n.claim_token IS NULL THEN p_enqueue_effects ELSE p_keep_effects END)[1])
                             AS in_process,
                         array_agg((CASE WHEN n.claim_token IS NULL THEN p_enqueue_effects ELSE p_keep_effects END)[2])
                             AS processed,
                         array_agg((CASE WHEN n.claim_token IS NULL THEN p_enqueue_effects ELSE p_keep_effects END)[3])
                             AS stamp_processed_at,
                         array_agg((CASE WHEN n.claim_token IS NULL THEN p_enqueue_effects ELSE p_keep_effects END)[4])
                             AS count_attempt,
                         array_agg((CASE WHEN n.claim_token IS NULL THEN p_enqueue_effects ELSE p_keep_effects END)[5])
                             AS reset_attempts,
                         count(*)::int AS n
                  FROM next n HAVING count(*) > 0) b
            CROSS JOIN LATERAL tasker.step_transition_many(
                b.steps, array_fill('pending'::text, ARRAY[b.n]), b.paths, b.metadata, array_fill(NULL::int, ARRAY[b.n]),
                b.in_process, b.processed, b.stamp_processed_at, b.count_attempt, b.reset_attempts,
                array_fill(NULL::jsonb, ARRAY[b.n]), array_fill(NULL::int, ARRAY[b.n]), array_fill(NULL::bool, ARRAY[b.n]),
                array_fill(NULL::uuid, ARRAY[b.n]), array_fill(NULL::uuid, ARRAY[b.n]), array_fill(NULL::bigint, ARRAY[b.n])
            ) c
        )
        SELECT ARRAY(SELECT task_uuid FROM planned), ARRAY(SELECT task_uuid FROM finished),
               array_agg(n.workflow_step_uuid), array_agg(n.task_uuid),
               array_agg(n.queue), array_agg(CASE WHEN e.to_state = 'in_progress' THEN n.claim_token END)
        INTO v_planned, v_finished, v_next_steps, v_next_tasks, v_next_queues, v_next_tokens
        FROM next n
        LEFT JOIN enqueued e ON e.workflow_step_uuid = n.workflow_step_uuid;

        -- the steps sent rather than claimed get their messages and one wake-up per queue (the claimed ones get
        -- theirs, held, from the caller's next statement: store.steps.step_claim_by_token)
        FOR v_queue IN
            SELECT q.queue, q.channel, array_agg(jsonb_build_object('task_uuid', n.task_uuid, 'step_uuid', n.step_uuid,
                                                                   'correlation_id', t.correlation_id)) AS bodies
            FROM unnest(v_next_steps, v_next_tasks, v_next_queues, v_next_tokens) AS n(step_uuid, task_uuid, queue, token)
            JOIN unnest(p_plan_queues, p_plan_channels) AS q(queue, channel) ON q.queue = n.queue
            JOIN tasker.tasks t ON t.task_uuid = n.task_uuid
            JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = n.step_uuid AND st.most_recent
            WHERE n.token IS NULL AND st.to_state = 'enqueued'
            GROUP BY q.queue, q.channel
        LOOP
            PERFORM pgmq.send_batch(v_queue.queue, v_queue.bodies);
            PERFORM pg_notify(v_queue.channel, '');
        END LOOP;
    END IF;

    RETURN QUERY
    SELECT r.step_uuid, r.here, r.step_uuid = ANY(v_completed),
           r.step_uuid = ANY(v_completed) AND r.task_uuid = ANY(v_planned),
           r.step_uuid = ANY(v_completed) AND r.task_uuid = ANY(v_finished), v_sent, v_acked,
           NULL::uuid, NULL::text, NULL::text
    FROM unnest(v_steps, v_here, v_tasks) AS r(step_uuid, here, task_uuid)
    UNION ALL
    SELECT NULL::uuid, NULL::boolean, NULL::boolean, NULL::boolean, NULL::boolean, v_sent, v_acked, n.step_uuid,
           n.queue, n.token
    FROM unnest(v_next_steps, v_next_queues, v_next_tokens) AS n(step_uuid, queue, token);
END
$fn$;


-- step_transition_many as in 0010, with two changes for the store above: a hop may carry its own `metadata`
-- (used instead of the change's), and the audit row of a stored result is tied to the path's first hop (the
-- result's own transition) rather than its last. Every other caller's audited path has one hop, so its audit row
-- is the same row as before. The signature is unchanged.
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
               -- a hop may carry its own metadata (a result completed as it is stored: the completer's);
               -- a retry delay becomes an absolute retry_at on the database clock (read by step readiness)
               COALESCE(h.hop -> 'metadata', i.metadata - 'retry_delay_ms' - 'expected_claim_token')
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
        RETURNING workflow_step_uuid, workflow_step_transition_uuid, to_state, most_recent, sort_key
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
        JOIN flipped f ON f.workflow_step_uuid = u.workflow_step_uuid
        -- the audit row belongs to the result's own transition: the path's first hop
        JOIN inserted n ON n.workflow_step_uuid = u.workflow_step_uuid AND n.sort_key = f.sort_key + 1
        JOIN input i ON i.step_uuid = u.workflow_step_uuid
        WHERE i.audit_success IS NOT NULL
        RETURNING workflow_step_uuid
    )
    SELECT u.workflow_step_uuid, u.task_uuid, u.attempts, n.to_state, n.workflow_step_transition_uuid
    FROM updated u
    JOIN inserted n ON n.workflow_step_uuid = u.workflow_step_uuid AND n.most_recent;
END
$fn$;
