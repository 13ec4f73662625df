-- name: task_create
-- One statement creates a task, its initial steps, their `provides` edges and the first ('pending') transition
-- rows of all of them, and (when the caller knows it at creation, as for every task with root steps) how the task
-- starts: its route out of 'pending' (`task_route`, hops {state, event}) and the 'enqueued' rows of the root steps
-- (`enqueued`), the same rows the transition functions would write a statement later. Ids come from the caller,
-- so later statements of the same transaction need not wait for RETURNING. Foreign keys are checked at the end of
-- the statement, after every part is inserted. `template_digest` (when given) is the digest of the template the
-- caller built the task from: if the stored configuration no longer has it (re-registered meanwhile), nothing is
-- written and `task_created` is 0, so a caller creating from a cached copy reads the template again.
WITH template AS (
    SELECT 1
    FROM tasker.named_tasks nt
    WHERE nt.named_task_uuid = %(named_task_uuid)s
      AND (%(template_digest)s::text IS NULL OR md5(nt.configuration::text) = %(template_digest)s::text)
),
task AS (
    INSERT INTO tasker.tasks (task_uuid, named_task_uuid, requested_at, initiator, source_system, reason, tags,
                              context, identity_hash, priority, correlation_id, parent_correlation_id)
    SELECT %(task_uuid)s, %(named_task_uuid)s, coalesce(%(requested_at)s::timestamp, timezone('utc', now())),
           %(initiator)s, %(source_system)s, %(reason)s, %(tags)s, %(context)s, %(identity_hash)s, %(priority)s,
           %(correlation_id)s, %(parent_correlation_id)s
    FROM template
    RETURNING task_uuid
),
steps AS (
    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, retryable, max_attempts,
                                       inputs)
    SELECT s.step_uuid, task.task_uuid, ns.named_step_uuid, s.retryable, s.max_attempts, s.inputs
    FROM task
    CROSS JOIN unnest(%(step_uuids)s::uuid[], %(step_names)s::text[], %(retryable)s::bool[],
                      %(max_attempts)s::int[], %(inputs)s::jsonb[])
         AS s(step_uuid, name, retryable, max_attempts, inputs)
    JOIN tasker.named_steps ns ON ns.name = s.name
    RETURNING workflow_step_uuid
),
edges AS (
    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
    SELECT e.from_uuid, e.to_uuid, 'provides'
    FROM task
    CROSS JOIN unnest(%(edge_from)s::uuid[], %(edge_to)s::uuid[]) AS e(from_uuid, to_uuid)
    RETURNING 1
),
task_first AS (
    INSERT INTO tasker.task_transitions (task_uuid, to_state, from_state, metadata, sort_key, most_recent,
                                         processor_uuid)
    SELECT task_uuid, 'pending', NULL, %(task_metadata)s, 1, jsonb_array_length(%(task_route)s::jsonb) = 0,
           %(processor_uuid)s
    FROM task
    UNION ALL
    SELECT task.task_uuid, h.hop ->> 'state', COALESCE(lag(h.hop ->> 'state') OVER (ORDER BY h.n), 'pending'),
           %(start_metadata)s::jsonb || jsonb_build_object('event', h.hop ->> 'event'), 1 + h.n::int,
           h.n = jsonb_array_length(%(task_route)s::jsonb), NULLIF(%(start_metadata)s::jsonb ->> 'processor_uuid', '')::uuid
    FROM task CROSS JOIN LATERAL jsonb_array_elements(%(task_route)s::jsonb) WITH ORDINALITY AS h(hop, n)
    RETURNING 1
),
steps_first AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, from_state, metadata, sort_key,
                                                  most_recent)
    SELECT workflow_step_uuid, 'pending', NULL, %(step_metadata)s, 1,
           NOT (workflow_step_uuid = ANY(%(enqueued)s::uuid[]))
    FROM steps
    UNION ALL
    SELECT workflow_step_uuid, 'enqueued', 'pending', %(start_metadata)s::jsonb || jsonb_build_object('event', 'enqueue'),
           2, true
    FROM steps
    WHERE workflow_step_uuid = ANY(%(enqueued)s::uuid[])
    RETURNING 1
)
SELECT (SELECT count(*) FROM task) AS task_created, (SELECT count(*) FROM steps) AS steps_created,
       (SELECT count(*) FROM edges) AS edges_created,
       (SELECT count(*) FROM task_first) + (SELECT count(*) FROM steps_first) AS transitions_created;

-- name: task_find_by_identity
-- The task that already holds an identity hash (reported with a duplicate-identity error).
SELECT task_uuid FROM tasker.tasks WHERE identity_hash = %(identity_hash)s;

-- name: task_lock
-- Serialises orchestration decisions about one task (result processing, enqueueing, finalising) across
-- orchestrators: whoever holds the row lock sees, from its next statement on, every change committed before it.
-- NO KEY UPDATE, not UPDATE: it excludes the other task locks, but not the KEY SHARE lock that a worker's audit
-- insert takes through its foreign key to the task, so a held task lock never stalls (or deadlocks with) workers.
SELECT t.task_uuid FROM tasker.tasks t WHERE t.task_uuid = %(task_uuid)s FOR NO KEY UPDATE OF t;

-- name: task_state_get
-- A task's current state and the ids orchestration needs (read after task_lock).
SELECT t.task_uuid, t.named_task_uuid, t.correlation_id, COALESCE(tt.to_state, 'pending') AS state
FROM tasker.tasks t
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
WHERE t.task_uuid = %(task_uuid)s;

-- name: task_get
-- One task with its template names and current state.
SELECT t.*, nt.name AS task_name, nt.version AS task_version, ns.name AS namespace_name,
       COALESCE(tt.to_state, 'pending') AS state
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
WHERE t.task_uuid = %(task_uuid)s;

-- name: task_steps
-- The steps of a task with their names, current states and columns, in creation order.
SELECT s.workflow_step_uuid, s.task_uuid, s.named_step_uuid, n.name, COALESCE(st.to_state, 'pending') AS state,
       s.retryable, s.max_attempts, s.in_process, s.processed, s.processed_at, COALESCE(s.attempts, 0) AS attempts,
       s.last_attempted_at, s.backoff_request_seconds, s.inputs, s.results, s.checkpoint, s.created_at,
       s.updated_at, st.metadata AS state_metadata
FROM tasker.workflow_steps s
JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent
WHERE s.task_uuid = %(task_uuid)s
ORDER BY s.workflow_step_uuid;

-- name: task_edges
-- The DAG edges of a task as (parent, child) step ids with the edge name.
SELECT e.from_step_uuid, e.to_step_uuid, e.name
FROM tasker.workflow_step_edges e
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = e.to_step_uuid
WHERE s.task_uuid = %(task_uuid)s
ORDER BY e.workflow_step_edge_uuid;

-- name: task_try_lock_many
-- Row locks on the tasks of a batch that no other transaction holds; returns the tasks locked. Skipping busy
-- tasks (instead of waiting) keeps orchestrators from queueing behind each other's batches: the results of a busy
-- task are handed back and applied a moment later. Only the lock: states are read by the next statement.
SELECT t.task_uuid
FROM tasker.tasks t
WHERE t.task_uuid = ANY(%(task_uuids)s::uuid[])
FOR NO KEY UPDATE OF t SKIP LOCKED;

-- name: task_advance_many
-- Carry out the orchestrator's plans for locked tasks in one statement: enqueue ready steps (compare-and-swap to
-- 'enqueued'), send their messages to their namespace queues with one wake-up per queue, move the tasks
-- (compare-and-swap), and delete the result messages that were applied. Under the task locks none of these can
-- lose a race, so nothing here waits for another's outcome.
WITH enqueued AS (
    SELECT * FROM tasker.step_transition_many(
        %(step_uuids)s::uuid[], %(from_states)s::text[], %(paths)s::jsonb[], %(metadata)s::jsonb[],
        %(expected_attempts)s::int[], %(in_process)s::bool[], %(processed)s::bool[], %(stamp_processed_at)s::bool[],
        %(count_attempt)s::bool[], %(reset_attempts)s::bool[], %(results)s::jsonb[], %(backoff_seconds)s::int[],
        %(audit_success)s::bool[], %(worker_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(execution_ms)s::bigint[]
    )
),
routed AS (
    SELECT m.queue, m.channel,
           array_agg(jsonb_build_object('task_uuid', e.task_uuid, 'step_uuid', e.workflow_step_uuid,
                                        'correlation_id', m.correlation_id)) AS bodies
    FROM enqueued e
    JOIN unnest(%(delivery_step_uuids)s::uuid[], %(queues)s::text[], %(channels)s::text[],
                %(delivery_correlation_ids)s::uuid[])
         AS m(step_uuid, queue, channel, correlation_id) ON m.step_uuid = e.workflow_step_uuid
    GROUP BY m.queue, m.channel
),
sent AS (
    SELECT r.queue, count(*) AS n, pg_notify(r.channel, '') AS notified
    FROM routed r CROSS JOIN LATERAL pgmq.send_batch(r.queue, r.bodies)
    GROUP BY r.queue, r.channel
),
moved AS (
    SELECT * FROM tasker.task_transition_many(
        %(task_uuids)s::uuid[], %(task_from_states)s::text[], %(task_paths)s::jsonb[], %(task_metadata)s::jsonb[]
    )
),
acks AS (
    SELECT %(ack_ids)s::bigint[] AS ids WHERE cardinality(%(ack_ids)s::bigint[]) > 0
),
acked AS (
    SELECT count(*) AS n FROM acks CROSS JOIN LATERAL pgmq.delete(%(ack_queue)s, acks.ids)
)
SELECT (SELECT count(*) FROM enqueued) AS enqueued, (SELECT coalesce(sum(n), 0) FROM sent) AS sent,
       (SELECT count(*) FROM moved) AS moved, (SELECT n FROM acked) AS acked;

-- name: task_cancelled_notify
-- Signal, at commit, that a task was cancelled (payload: its uuid): workers tell its running handlers.
SELECT pg_notify(%(channel)s, %(task_uuid)s::text) AS notified;

-- name: task_existing_many
-- Which of these tasks exist (a result naming a task that does not is dropped, not retried forever).
SELECT task_uuid FROM tasker.tasks WHERE task_uuid = ANY(%(task_uuids)s::uuid[]);
