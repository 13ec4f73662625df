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
    p_complete_effects bool[]   -- in_process, processed, stamp_processed_at, count_attempt, reset_attempts
)
RETURNS TABLE (workflow_step_uuid uuid, here boolean, completed boolean, sent bigint, acked bigint)
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

    RETURN QUERY
    SELECT r.step_uuid, r.here, r.step_uuid = ANY(v_completed), v_sent, v_acked
    FROM unnest(v_steps, v_here) AS r(step_uuid, here);
END
$fn$;
