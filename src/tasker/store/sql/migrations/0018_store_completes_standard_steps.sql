-- 0018: a worker's result store, as one function that can also complete the steps it stores.
--
-- The fast path used to store a result (in_progress → enqueued_for_orchestration) in one statement, wait for the
-- answer, then complete the step (→ complete) in a second compare-and-swap: a round trip and a statement per step
-- for a decision there is nothing to decide about. A standard step's success always completes it once its task is
-- locked and has not ended (engine.results.step_change), so the store now takes that second hop itself for the
-- results the caller marks (`p_complete`), in the same transaction, as a second compare-and-swap with the
-- orchestrator's own metadata and effects (passed in, so the state machine stays in model.machines). The rows
-- written are the same as before: the enqueued_for_orchestration transition with its audit row, then the complete
-- transition.
--
-- The statements run one after another, each seeing the one before and every commit made before it began: the
-- task locks first (SKIP LOCKED: never waits), then the store, then the announcements and acknowledgements, then
-- the completions, which read the tasks' states after the locks were taken. Only results whose task this call
-- locked (`here`) are completed; the others are announced on the results queue as before. A result whose store
-- loses is neither announced, acknowledged nor completed.
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
    p_may_lock bool[],          -- the results the caller may apply itself, if their task's lock is free
    p_lock_tasks uuid[],
    p_results_queue text,
    p_results_channel text,
    p_complete bool[],          -- of those, the ones whose step completes with its result (standard steps)
    p_complete_metadata jsonb[],
    p_complete_path jsonb,      -- the completion's hops and effects (store.transitions.step_change_params)
    p_complete_effects bool[],  -- in_process, processed, stamp_processed_at, count_attempt, reset_attempts
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
    v_completes bool[];
    v_complete_metadata jsonb[];
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

    SELECT COALESCE(array_agg(s.workflow_step_uuid), '{}'), array_agg(s.task_uuid), array_agg(m.queue),
           array_agg(m.msg_id), array_agg(m.correlation_id), array_agg(m.may_lock AND s.task_uuid = ANY(v_locked)),
           array_agg(m.completes), array_agg(m.complete_metadata)
    INTO v_steps, v_tasks, v_queues, v_msg_ids, v_correlations, v_here, v_completes, v_complete_metadata
    FROM tasker.step_transition_many(
        p_step_uuids, p_from_states, p_paths, p_metadata, p_expected_attempts, p_in_process, p_processed,
        p_stamp_processed_at, p_count_attempt, p_reset_attempts, p_results, p_backoff_seconds, p_audit_success,
        p_worker_uuids, p_correlation_ids, p_execution_ms
    ) s
    JOIN unnest(p_step_uuids, p_queues, p_msg_ids, p_correlation_ids, p_may_lock, p_complete, p_complete_metadata)
         AS m(step_uuid, queue, msg_id, correlation_id, may_lock, completes, complete_metadata)
      ON m.step_uuid = s.workflow_step_uuid;
    IF cardinality(v_steps) = 0 THEN
        RETURN;
    END IF;

    -- results for an orchestrator, with one wake-up; none when everything is applied here
    SELECT count(*) INTO v_sent
    FROM (SELECT array_agg(jsonb_build_object('task_uuid', r.task_uuid, 'step_uuid', r.step_uuid,
                                              'correlation_id', r.correlation_id)) AS bodies
          FROM unnest(v_steps, v_tasks, v_queues, v_msg_ids, v_correlations, v_here, v_completes, v_complete_metadata)
                   AS r(step_uuid, task_uuid, queue, msg_id, correlation_id, here, completes, complete_metadata)
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

    -- the completions, under the locks taken above: a task that ended meanwhile (cancelled) completes nothing
    WITH todo AS (
        SELECT r.step_uuid, r.complete_metadata
        FROM unnest(v_steps, v_tasks, v_queues, v_msg_ids, v_correlations, v_here, v_completes, v_complete_metadata)
             AS r(step_uuid, task_uuid, queue, msg_id, correlation_id, here, completes, complete_metadata)
        LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = r.task_uuid AND tt.most_recent
        WHERE r.here AND r.completes
          AND COALESCE(tt.to_state, 'pending') NOT IN ('cancelled', 'complete', 'resolved_manually')
    ),
    batch AS (
        SELECT array_agg(step_uuid) AS steps, array_agg(complete_metadata) AS metadata, count(*)::int AS n
        FROM todo HAVING count(*) > 0
    )
    SELECT COALESCE(array_agg(c.workflow_step_uuid), '{}') INTO v_completed
    FROM batch b
    CROSS JOIN LATERAL tasker.step_transition_many(
        b.steps, array_fill('enqueued_for_orchestration'::text, ARRAY[b.n]), array_fill(p_complete_path, ARRAY[b.n]),
        b.metadata, array_fill(NULL::int, ARRAY[b.n]), array_fill(p_complete_effects[1], ARRAY[b.n]),
        array_fill(p_complete_effects[2], ARRAY[b.n]), array_fill(p_complete_effects[3], ARRAY[b.n]),
        array_fill(p_complete_effects[4], ARRAY[b.n]), array_fill(p_complete_effects[5], ARRAY[b.n]),
        array_fill(NULL::jsonb, ARRAY[b.n]), array_fill(NULL::int, ARRAY[b.n]), array_fill(NULL::bool, ARRAY[b.n]),
        array_fill(NULL::uuid, ARRAY[b.n]), array_fill(NULL::uuid, ARRAY[b.n]), array_fill(NULL::bigint, ARRAY[b.n])
    ) c;

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
