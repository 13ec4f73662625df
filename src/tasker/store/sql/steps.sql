-- name: step_readiness
-- Readiness of every step of one task (tasker.get_step_readiness_status, migration 0003).
SELECT * FROM tasker.get_step_readiness_status(%(task_uuid)s);

-- name: step_outcome_many
-- What result processing needs about steps whose results arrived: state, stored result, attempt counters, the
-- template step name (batch workers name theirs in inputs), the task's template id and current state. Read after
-- the tasks are locked, in a statement of its own, so the states are the ones committed before the lock.
SELECT s.workflow_step_uuid, s.task_uuid, n.name, COALESCE(s.inputs ->> '__template_step_name', n.name)
           AS template_step_name,
       COALESCE(st.to_state, 'pending') AS state, s.results, COALESCE(s.attempts, 0) AS attempts,
       COALESCE(s.max_attempts, 3) AS max_attempts, s.retryable, t.named_task_uuid, t.correlation_id,
       COALESCE(tt.to_state, 'pending') AS task_state
FROM unnest(%(step_uuids)s::uuid[]) AS i(step_uuid)
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent;

-- name: step_claim_view_many
-- What a worker needs to decide about redelivered messages: each step's current state, attempts used and
-- allowed, the token of the claim that holds it, and its task's ids (to report a lost attempt when none is left).
SELECT s.workflow_step_uuid, COALESCE(st.to_state, 'pending') AS state, COALESCE(s.attempts, 0) AS attempts,
       COALESCE(s.max_attempts, 3) AS max_attempts, s.retryable, s.task_uuid, t.correlation_id,
       st.metadata ->> 'claim_token' AS claim_token
FROM unnest(%(step_uuids)s::uuid[]) AS i(step_uuid)
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent;

-- name: step_claim_many
-- Claim steps for a worker and return everything their handlers see, in one statement and one commit: the
-- compare-and-swap (enqueued → in_progress, or a lease takeover), then each claimed step's task context and names,
-- inputs, checkpoint and counters, and the stored results of all its ancestors (name → results). Steps whose
-- claim loses return no row. `attempts` comes from the claim itself (this statement's snapshot predates it). Each
-- claim's metadata carries its fresh `claim_token`: the result and checkpoints of this claim name it (migration 0010).
WITH claimed AS (
    SELECT * FROM tasker.step_transition_many(
        %(step_uuids)s::uuid[], %(from_states)s::text[], %(paths)s::jsonb[], %(metadata)s::jsonb[],
        %(expected_attempts)s::int[], %(in_process)s::bool[], %(processed)s::bool[], %(stamp_processed_at)s::bool[],
        %(count_attempt)s::bool[], %(reset_attempts)s::bool[], %(results)s::jsonb[], %(backoff_seconds)s::int[],
        %(audit_success)s::bool[], %(worker_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(execution_ms)s::bigint[]
    )
)
SELECT h.*, c.attempts
FROM claimed c
JOIN tasker_ext.step_handler_context h ON h.workflow_step_uuid = c.workflow_step_uuid;

-- name: step_result_store_many
-- A worker's results in one statement and one commit (tasker.step_result_store_many, migration 0018): the
-- compare-and-swap (in_progress → enqueued_for_orchestration or enqueued_as_error_for_orchestration, with the
-- results and an audit row), one message per stored result to the orchestration queue (plus its wake-up), and the
-- deletion of the stored steps' own messages. A result that loses (the step was cancelled, or taken over after its
-- lease ran out) is neither announced nor acknowledged: its message now belongs to whoever holds the step. Each
-- result names its claim's token (`expected_claim_token`), so a claim rolled back by a database crash and re-issued
-- cannot be completed twice. The fast path: the tasks in `lock_tasks` are locked here if no one else holds them
-- (SKIP LOCKED: never waits); the stored results of those tasks are not announced (`here`), the worker applies them
-- in this transaction, and those marked `complete` (a standard step's success) are completed here already.
SELECT * FROM tasker.step_result_store_many(
    %(step_uuids)s::uuid[], %(from_states)s::text[], %(paths)s::jsonb[], %(metadata)s::jsonb[],
    %(expected_attempts)s::int[], %(in_process)s::bool[], %(processed)s::bool[], %(stamp_processed_at)s::bool[],
    %(count_attempt)s::bool[], %(reset_attempts)s::bool[], %(results)s::jsonb[], %(backoff_seconds)s::int[],
    %(audit_success)s::bool[], %(worker_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(execution_ms)s::bigint[],
    %(queues)s::text[], %(msg_ids)s::bigint[], %(lock_tasks)s::uuid[],
    %(results_queue)s::text, %(results_channel)s::text, %(complete)s::bool[], %(complete_metadata)s::jsonb[],
    %(complete_path)s::jsonb, %(complete_effects)s::bool[], %(plan_namespaces)s::text[], %(plan_queues)s::text[],
    %(plan_channels)s::text[], %(claim_tokens)s::text[], %(claim_metadata)s::jsonb, %(enqueue_metadata)s::jsonb,
    %(lease_seconds)s::int, %(enqueue_path)s::jsonb, %(enqueue_effects)s::bool[], %(keep_path)s::jsonb,
    %(keep_effects)s::bool[], %(finish_path)s::jsonb
);

-- name: step_result_store_moved_on
-- step_result_store_many for a caller that commits in the same flight (the statements, then the Sync that ends
-- the implicit transaction), before it reads the answer: it can plan nothing in this transaction, so the store
-- must move on everything it applies here. When a result was applied here but its task was not moved on (here,
-- not planned), the guard (migration 0019) raises SQLSTATE TK001 and the whole flight rolls back; the caller
-- stores the results again in a transaction of its own and plans them itself. {store} is step_result_store_many.
WITH stored AS (
{store}
)
SELECT stored.* FROM stored
WHERE tasker.step_results_moved_on_or_fail((SELECT COALESCE(bool_or(s.here AND NOT s.planned), false) FROM stored s));

-- name: step_claim_by_token
-- The held messages and handler context of the steps a result store claimed for its worker (the continuation,
-- migration 0018; {queue_table} is the queue's table): the steps of these tasks held in_progress under one of these
-- fresh claim tokens get their message written as delivered once and hidden for `vt` seconds (the lease), as
-- step_claim_kept writes them. Sent right after the store, in the same transaction, so it sees what the store wrote;
-- rows are shaped like step_claim_from_queue's.
WITH kept AS (
    SELECT s.workflow_step_uuid AS step_uuid, s.task_uuid, st.metadata ->> 'claim_token' AS claim_token,
           st.metadata -> 'correlation_id' AS correlation_id
    FROM tasker.workflow_steps s
    JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent
    WHERE s.task_uuid = ANY(%(task_uuids)s::uuid[]) AND NOT s.processed AND st.to_state = 'in_progress'
      AND st.metadata ->> 'claim_token' = ANY(%(claim_tokens)s::text[])
),
held AS (
    INSERT INTO pgmq.{queue_table} (read_ct, last_read_at, vt, message)
    SELECT 1, clock_timestamp(), clock_timestamp() + make_interval(secs => %(vt)s),
           jsonb_build_object('task_uuid', k.task_uuid, 'step_uuid', k.step_uuid, 'correlation_id', k.correlation_id)
    FROM kept k
    RETURNING msg_id, read_ct, message
)
SELECT h.msg_id, h.read_ct, h.message, k.claim_token, true AS claimed, x.*, COALESCE(s.attempts, 0) AS attempts
FROM held h
JOIN kept k ON k.step_uuid = (h.message ->> 'step_uuid')::uuid
JOIN tasker_ext.step_handler_context x ON x.workflow_step_uuid = k.step_uuid
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = k.step_uuid
ORDER BY h.msg_id;

-- name: task_ready_many
-- Tasks with steps ready to run (tasker.get_next_ready_tasks, migration 0003): backoffs that passed, tasks that
-- were never started.
SELECT task_uuid FROM tasker.get_next_ready_tasks(%(limit)s);

-- name: step_readiness_many
-- Readiness of every step of several tasks (tasker.get_step_readiness_status_batch, migration 0003).
SELECT * FROM tasker.get_step_readiness_status_batch(%(task_uuids)s::uuid[]);

-- name: step_result_late_record_many
-- Results that arrived after their step moved on to a final state (cancelled, or finished by an operator): they
-- are not applied, but each leaves an audit row on the step's current transition, so the run is on record. Returns
-- the steps in such a final state (their messages can be acknowledged); steps still in progress under another
-- attempt (a lease takeover) are not returned, their message belongs to the new holder. A result that this very
-- claim already stored (a retried store whose first try committed but whose answer was lost with the connection)
-- is not late: it is returned with `already_stored`, and recorded nowhere a second time.
WITH input AS (
    SELECT *
    FROM unnest(%(step_uuids)s::uuid[], %(success)s::bool[], %(worker_uuids)s::uuid[], %(correlation_ids)s::uuid[],
                %(execution_ms)s::bigint[], %(claim_tokens)s::text[])
         AS i(step_uuid, success, worker_uuid, correlation_id, execution_ms, claim_token)
),
ours AS (
    SELECT i.step_uuid
    FROM input i
    WHERE i.claim_token IS NOT NULL
      AND EXISTS (SELECT 1 FROM tasker.workflow_step_transitions x
                  WHERE x.workflow_step_uuid = i.step_uuid
                    AND x.to_state IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')
                    AND x.metadata ->> 'claim_token' = i.claim_token)
),
late AS (
    SELECT i.step_uuid, i.success, i.worker_uuid, i.correlation_id, i.execution_ms, s.task_uuid,
           st.workflow_step_transition_uuid
    FROM input i
    JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
    JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = i.step_uuid AND st.most_recent
    WHERE st.to_state IN ('cancelled', 'complete', 'resolved_manually', 'error')
      AND NOT EXISTS (SELECT 1 FROM ours o WHERE o.step_uuid = i.step_uuid)
),
recorded AS (
    INSERT INTO tasker.workflow_step_result_audit (workflow_step_uuid, workflow_step_transition_uuid, task_uuid,
                                                   worker_uuid, correlation_id, success, execution_time_ms)
    SELECT step_uuid, workflow_step_transition_uuid, task_uuid, worker_uuid, correlation_id, success, execution_ms
    FROM late
    ON CONFLICT (workflow_step_uuid, workflow_step_transition_uuid) DO NOTHING
    RETURNING workflow_step_uuid
)
SELECT l.step_uuid AS workflow_step_uuid, false AS already_stored, (SELECT count(*) FROM recorded) AS recorded
FROM late l
UNION ALL
SELECT o.step_uuid, true, 0 FROM ours o;

-- name: step_checkpoint_save_claimed
-- A running handler's checkpoint: cursor, items processed and accumulated results, stamped, with the history of
-- earlier checkpoints appended. No state change: the step stays 'in_progress'. Only the claim that holds the step
-- may write: current state in_progress, written by the claim with this token (migration 0010), and the attempt
-- count that claim saw; so neither a worker whose lease ran out nor one whose claim a database crash rolled back
-- can overwrite its successor's progress. Returns the stored checkpoint, or no row.
UPDATE tasker.workflow_steps s
SET checkpoint = %(checkpoint)s::jsonb
        || jsonb_build_object(
               'timestamp', to_jsonb(timezone('utc', now())),
               'attempt', COALESCE(s.attempts, 0),
               'history', COALESCE(s.checkpoint -> 'history', '[]'::jsonb)
                   || jsonb_build_array(jsonb_build_object(
                          'cursor', %(checkpoint)s::jsonb -> 'cursor',
                          'items_processed', %(checkpoint)s::jsonb -> 'items_processed',
                          'attempt', COALESCE(s.attempts, 0),
                          'timestamp', to_jsonb(timezone('utc', now()))))),
    updated_at = timezone('utc', now())
WHERE s.workflow_step_uuid = %(step_uuid)s
  AND COALESCE(s.attempts, 0) = %(attempts)s
  AND EXISTS (SELECT 1 FROM tasker.workflow_step_transitions t
              WHERE t.workflow_step_uuid = s.workflow_step_uuid AND t.most_recent AND t.to_state = 'in_progress'
                AND t.metadata ->> 'claim_token' = %(claim_token)s)
RETURNING s.checkpoint;

-- name: step_claim_from_queue
-- A worker's read and claim in one statement (PGMQ only; {queue_table} is filled in per queue): take up to `qty`
-- visible messages and hide them for `vt` seconds (the lease), as queue_read does; claim the steps of the first
-- deliveries (read_ct = 1) `enqueued → in_progress` as step_claim_many does, each under its own fresh random claim
-- token (drawn here, so no client sends a token per free slot) with `metadata` plus the message's correlation id;
-- and return one row per
-- message taken: the claimed ones with everything their handlers see, the others (redeliveries, lost races)
-- with `claimed` false, for the worker to look at. The per-claim constants of the compare-and-swap (`path`,
-- effects) come from the same code as every other transition (store.transitions.step_change_params).
WITH next AS (
    SELECT msg_id
    FROM pgmq.{queue_table}
    WHERE vt <= clock_timestamp()
    ORDER BY msg_id
    LIMIT %(qty)s
    FOR UPDATE SKIP LOCKED
),
taken AS (
    UPDATE pgmq.{queue_table} m
    SET last_read_at = clock_timestamp(), vt = clock_timestamp() + make_interval(secs => %(vt)s),
        read_ct = m.read_ct + 1
    FROM next
    WHERE m.msg_id = next.msg_id
    RETURNING m.msg_id, m.read_ct, m.message
),
fresh AS (  -- one message per step: a second one for the same step is left to the worker (a lost race)
    SELECT d.*, replace(gen_random_uuid()::text, '-', '') AS claim_token
    FROM (
        SELECT DISTINCT ON (t.message ->> 'step_uuid')
               t.msg_id, (t.message ->> 'step_uuid')::uuid AS step_uuid, t.message -> 'correlation_id' AS correlation_id
        FROM taken t
        WHERE t.read_ct = 1 AND t.message ? 'step_uuid'
        ORDER BY t.message ->> 'step_uuid', t.msg_id
    ) d
),
batch AS (
    SELECT array_agg(f.step_uuid ORDER BY f.msg_id) AS steps,
           array_agg(%(metadata)s::jsonb || jsonb_build_object('correlation_id', f.correlation_id,
                                                               'claim_token', f.claim_token)
                     ORDER BY f.msg_id) AS metadata,
           count(*)::int AS n
    FROM fresh f
    HAVING count(*) > 0
),
claimed AS (
    SELECT c.*
    FROM batch b
    CROSS JOIN LATERAL tasker.step_transition_many(
        b.steps, array_fill('enqueued'::text, ARRAY[b.n]), array_fill(%(path)s::jsonb, ARRAY[b.n]), b.metadata,
        array_fill(NULL::int, ARRAY[b.n]), array_fill(%(in_process)s::bool, ARRAY[b.n]),
        array_fill(%(processed)s::bool, ARRAY[b.n]), array_fill(%(stamp_processed_at)s::bool, ARRAY[b.n]),
        array_fill(%(count_attempt)s::bool, ARRAY[b.n]), array_fill(%(reset_attempts)s::bool, ARRAY[b.n]),
        array_fill(NULL::jsonb, ARRAY[b.n]), array_fill(NULL::int, ARRAY[b.n]), array_fill(NULL::bool, ARRAY[b.n]),
        array_fill(NULL::uuid, ARRAY[b.n]), array_fill(NULL::uuid, ARRAY[b.n]), array_fill(NULL::bigint, ARRAY[b.n])
    ) c
),
context AS (  -- `attempts` from the claim itself: this statement's snapshot predates it
    SELECT h.*, c.attempts
    FROM claimed c
    JOIN tasker_ext.step_handler_context h ON h.workflow_step_uuid = c.workflow_step_uuid
)
SELECT t.msg_id, t.read_ct, t.message, f.claim_token, (x.workflow_step_uuid IS NOT NULL) AS claimed, x.*
FROM taken t
LEFT JOIN fresh f ON f.msg_id = t.msg_id
LEFT JOIN context x ON x.workflow_step_uuid = f.step_uuid
ORDER BY t.msg_id;

-- name: step_claim_kept
-- The fast path's continuation (PGMQ only; {queue_table} is filled in per queue): steps a worker's store
-- transaction just enqueued and claimed in one compare-and-swap (`pending → enqueued → in_progress` under their
-- task's lock, each with a fresh claim token: engine.finalizer.KeepHere) get their messages here, written as
-- delivered once and hidden for `vt` seconds (the lease, renewed by the worker like any other): if the worker
-- dies, the message comes back as a redelivery and the step is taken over. A step that is not held under its
-- token (its compare-and-swap lost, which the task lock rules out; this is the safe side) but is enqueued gets an
-- ordinary visible message with a wake-up instead, so it is never left without one. Returns one row per message
-- with the handler context of the held steps, shaped like step_claim_from_queue's rows.
WITH kept AS (
    SELECT k.step_uuid, k.correlation_id, k.claim_token, s.task_uuid, st.to_state,
           (st.to_state = 'in_progress' AND st.metadata ->> 'claim_token' = k.claim_token) AS claimed
    FROM unnest(%(step_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(claim_tokens)s::text[])
         AS k(step_uuid, correlation_id, claim_token)
    JOIN tasker.workflow_steps s ON s.workflow_step_uuid = k.step_uuid
    JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = k.step_uuid AND st.most_recent
),
held AS (
    INSERT INTO pgmq.{queue_table} (read_ct, last_read_at, vt, message)
    SELECT CASE WHEN k.claimed THEN 1 ELSE 0 END,
           CASE WHEN k.claimed THEN clock_timestamp() END,
           CASE WHEN k.claimed THEN clock_timestamp() + make_interval(secs => %(vt)s) ELSE clock_timestamp() END,
           jsonb_build_object('task_uuid', k.task_uuid, 'step_uuid', k.step_uuid, 'correlation_id', k.correlation_id)
    FROM kept k
    WHERE k.claimed OR k.to_state = 'enqueued'
    RETURNING msg_id, read_ct, message
),
woken AS (
    SELECT pg_notify(%(channel)s, '') AS notified
    FROM held h
    WHERE h.read_ct = 0
    GROUP BY ()
    HAVING count(*) > 0
),
context AS (
    SELECT h.*, COALESCE(s.attempts, 0) AS attempts
    FROM kept k
    JOIN tasker_ext.step_handler_context h ON h.workflow_step_uuid = k.step_uuid
    JOIN tasker.workflow_steps s ON s.workflow_step_uuid = k.step_uuid
    WHERE k.claimed
)
SELECT h.msg_id, h.read_ct, h.message, k.claim_token, k.claimed, (SELECT count(*) FROM woken) AS woken, x.*
FROM held h
JOIN kept k ON k.step_uuid = (h.message ->> 'step_uuid')::uuid
LEFT JOIN context x ON x.workflow_step_uuid = k.step_uuid
ORDER BY h.msg_id;
