-- name: outbox_insert_many
-- Messages to publish once the caller's transaction commits (the RabbitMQ transport's sends, delayed hand-backs
-- and failed results), with one signal-only NOTIFY that PostgreSQL delivers at commit (and folds, and drops on
-- rollback), so idle senders wake for committed rows only.
WITH queued AS (
    INSERT INTO tasker_ext.outbox (queue, body, reads, available_at)
    SELECT m.queue, m.body, m.reads, clock_timestamp() + make_interval(secs => m.delay)
    FROM unnest(%(queues)s::text[], %(bodies)s::jsonb[], %(reads)s::int[], %(delays)s::float8[])
         AS m(queue, body, reads, delay)
    RETURNING outbox_uuid
)
SELECT array_agg(outbox_uuid) AS outbox_uuids,
       (SELECT count(*) FROM (SELECT pg_notify(%(channel)s, '') FROM queued LIMIT 1) n) AS notified
FROM queued;

-- name: outbox_task_advance_many
-- task_advance_many (tasks.sql) for the RabbitMQ transport: the same compare-and-swaps under the task locks, but the
-- step messages go to the outbox (published after commit) and no queue message is deleted here (the transport
-- acknowledges the applied result deliveries on the broker once this transaction is known to have committed).
WITH enqueued AS (
    SELECT * FROM tasker.step_transition_many(
        %(step_uuids)s::uuid[], %(from_states)s::text[], %(paths)s::jsonb[], %(metadata)s::jsonb[],
        %(expected_attempts)s::int[], %(in_process)s::bool[], %(processed)s::bool[], %(stamp_processed_at)s::bool[],
        %(count_attempt)s::bool[], %(reset_attempts)s::bool[], %(results)s::jsonb[], %(backoff_seconds)s::int[],
        %(audit_success)s::bool[], %(worker_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(execution_ms)s::bigint[]
    )
),
queued AS (
    INSERT INTO tasker_ext.outbox (queue, body)
    SELECT m.queue, jsonb_build_object('task_uuid', e.task_uuid, 'step_uuid', e.workflow_step_uuid,
                                       'correlation_id', m.correlation_id)
    FROM enqueued e
    JOIN unnest(%(delivery_step_uuids)s::uuid[], %(queues)s::text[], %(delivery_correlation_ids)s::uuid[])
         AS m(step_uuid, queue, correlation_id) ON m.step_uuid = e.workflow_step_uuid
    RETURNING 1
),
moved AS (
    SELECT * FROM tasker.task_transition_many(
        %(task_uuids)s::uuid[], %(task_from_states)s::text[], %(task_paths)s::jsonb[], %(task_metadata)s::jsonb[]
    )
)
SELECT (SELECT count(*) FROM enqueued) AS enqueued, (SELECT count(*) FROM queued) AS sent,
       (SELECT count(*) FROM moved) AS moved,
       (SELECT count(*) FROM (SELECT pg_notify(%(channel)s, '') FROM queued LIMIT 1) n) AS notified;

-- name: outbox_step_result_store_many
-- step_result_store_many (steps.sql) for the RabbitMQ transport: the same fenced compare-and-swap with its audit
-- rows and the same fast path (tasks in `lock_tasks` locked if free; their results are `here`, applied by the worker
-- in this transaction and announced to no one), one outbox row per other stored result for the orchestration
-- queue. The step deliveries are acknowledged on the broker by the transport once this is known to have committed.
WITH locked AS (
    SELECT t.task_uuid FROM tasker.tasks t
    WHERE t.task_uuid = ANY(%(lock_tasks)s::uuid[])
    FOR NO KEY UPDATE SKIP LOCKED
),
stored AS (
    SELECT * FROM tasker.step_transition_many(
        %(step_uuids)s::uuid[], %(from_states)s::text[], %(paths)s::jsonb[], %(metadata)s::jsonb[],
        %(expected_attempts)s::int[], %(in_process)s::bool[], %(processed)s::bool[], %(stamp_processed_at)s::bool[],
        %(count_attempt)s::bool[], %(reset_attempts)s::bool[], %(results)s::jsonb[], %(backoff_seconds)s::int[],
        %(audit_success)s::bool[], %(worker_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(execution_ms)s::bigint[]
    )
),
delivered AS (
    SELECT s.workflow_step_uuid, s.task_uuid, m.correlation_id,
           (m.lock_task IS NOT NULL AND s.task_uuid IN (SELECT task_uuid FROM locked)) AS here
    FROM stored s
    JOIN unnest(%(step_uuids)s::uuid[], %(correlation_ids)s::uuid[], %(lock_tasks)s::uuid[])
         AS m(step_uuid, correlation_id, lock_task) ON m.step_uuid = s.workflow_step_uuid
),
queued AS (
    INSERT INTO tasker_ext.outbox (queue, body)
    SELECT %(results_queue)s, jsonb_build_object('task_uuid', task_uuid, 'step_uuid', workflow_step_uuid,
                                                 'correlation_id', correlation_id)
    FROM delivered
    WHERE NOT here
    RETURNING 1
)
SELECT d.workflow_step_uuid, d.here, (SELECT count(*) FROM queued) AS sent,
       (SELECT count(*) FROM (SELECT pg_notify(%(channel)s, '') FROM queued LIMIT 1) n) AS notified
FROM delivered d;

-- name: outbox_redirect_many
-- Dead-letter messages still waiting in the outbox (a failed result re-sent with a delay, then given up on): they go
-- to their queue's dead-letter queue instead, at once.
UPDATE tasker_ext.outbox SET queue = queue || '_dlq', available_at = clock_timestamp()
WHERE outbox_uuid = ANY(%(outbox_uuids)s::uuid[]) AND queue NOT LIKE '%%\_dlq'
RETURNING outbox_uuid;

-- name: outbox_take_many
-- A sender's next batch: due rows, oldest first, locked so that concurrent senders take disjoint batches; the rows
-- are deleted in this same transaction once the broker confirmed them.
SELECT outbox_uuid, queue, body, reads
FROM tasker_ext.outbox
WHERE available_at <= clock_timestamp()
ORDER BY available_at, outbox_uuid
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: outbox_delete_many
-- Published and confirmed by the broker: forget them.
DELETE FROM tasker_ext.outbox WHERE outbox_uuid = ANY(%(outbox_uuids)s::uuid[]);

-- name: outbox_next_due
-- Seconds until the earliest waiting row is due (negative: due now; NULL: the outbox is empty), so an idle sender
-- sleeps exactly until a delayed message may go.
SELECT extract(epoch FROM min(available_at) - clock_timestamp())::float8 AS seconds FROM tasker_ext.outbox;

-- name: outbox_count
-- Rows not yet published (tests and `depth` diagnostics).
SELECT count(*) AS waiting FROM tasker_ext.outbox;

-- name: transaction_id_current
-- The caller's transaction id (assigned now if it had none), so that work to do after its commit can be held until
-- transaction_status_many reports it committed.
SELECT pg_current_xact_id()::text AS xid;

-- name: transaction_status_many
-- committed, aborted or in progress (NULL: too old to know) for transaction ids from transaction_id_current.
SELECT x AS xid, pg_xact_status(x::xid8) AS status FROM unnest(%(xids)s::text[]) AS x;
