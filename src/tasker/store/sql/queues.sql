-- name: queue_exists
-- Whether a queue's table is visible to this transaction (committed, or created by it).
SELECT to_regclass(format('pgmq.%%I', 'q_' || %(queue)s)) IS NOT NULL AS present;

-- name: queue_create
-- Create a PGMQ queue if it does not exist yet. The transaction-scoped advisory lock makes concurrent first
-- creators wait for each other, so the second finds the table instead of colliding with it.
WITH locked AS (SELECT pg_advisory_xact_lock(hashtext('tasker.queue:' || %(queue)s)) AS l)
SELECT pgmq.create(%(queue)s) FROM locked;

-- name: queue_send_many
-- Send many messages to one queue inside the caller's transaction, then one signal-only NOTIFY on the queue's
-- channel. PostgreSQL delivers the notification at commit and folds identical ones, so a transaction that sends
-- a batch wakes each listener once, and a rolled-back send wakes nobody. Written against the queue's table
-- ({queue_table}, as queue_read) with the row pgmq.send_batch writes (visible at once, no headers): send_batch
-- builds and plans its INSERT anew on every call (dynamic SQL in plpgsql), this one is planned once per connection.
WITH sent AS (
    INSERT INTO pgmq.{queue_table} (vt, message)
    SELECT clock_timestamp(), m.body FROM unnest(%(messages)s::jsonb[]) AS m(body)
    RETURNING msg_id
)
SELECT array_agg(msg_id ORDER BY msg_id) AS msg_ids, pg_notify(%(channel)s, '') AS notified FROM sent;

-- name: queue_read
-- Take up to `qty` visible messages and hide them for `vt` seconds (the lease): what pgmq.read does, written
-- against the queue's table ({queue_table} is filled in per queue with a quoted identifier) so that the server
-- keeps its plan, where pgmq.read builds and plans its statement anew on every call (a third of a millisecond).
WITH next AS (
    SELECT msg_id
    FROM pgmq.{queue_table}
    WHERE vt <= clock_timestamp()
    ORDER BY msg_id
    LIMIT %(qty)s
    FOR UPDATE SKIP LOCKED
)
UPDATE pgmq.{queue_table} m
SET last_read_at = clock_timestamp(), vt = clock_timestamp() + make_interval(secs => %(vt)s),
    read_ct = m.read_ct + 1
FROM next
WHERE m.msg_id = next.msg_id
RETURNING m.msg_id, m.read_ct, m.message;

-- name: queue_delete_many
-- Acknowledge: delete processed messages so queue tables stay small (the audit trail lives in tasker tables).
SELECT count(*) AS deleted FROM pgmq.delete(%(queue)s, %(msg_ids)s::bigint[]);

-- name: queue_set_vt_many
-- Extend the lease of in-flight messages, or (vt 0) make them visible again at once.
SELECT count(*) AS extended FROM pgmq.set_vt(%(queue)s, %(msg_ids)s::bigint[], %(vt)s);

-- name: queue_delay_many
-- Give messages back, visible again after `delay` seconds (fractions allowed, unlike pgmq.set_vt): a result whose
-- task another orchestrator holds comes back a moment later instead of being re-read in a tight loop.
UPDATE pgmq.{queue_table} SET vt = clock_timestamp() + make_interval(secs => %(delay)s)
WHERE msg_id = ANY(%(msg_ids)s::bigint[]);

-- name: queue_record_failure
-- A message whose processing failed: count the failure in its body (with the error) and hide it for `delay`
-- seconds. Runs in a transaction of its own after the failed one rolled back; returns the failures so far.
UPDATE pgmq.{queue_table}
SET message = message || jsonb_build_object('failures', coalesce((message ->> 'failures')::int, 0) + 1,
                                            'last_error', left(%(error)s, 2000)),
    vt = clock_timestamp() + make_interval(secs => %(delay)s)
WHERE msg_id = %(msg_id)s
RETURNING (message ->> 'failures')::int AS failures;

-- name: queue_archive_many
-- The dead-letter path: move messages to the queue's archive table (pgmq.a_<queue>), kept for investigation.
SELECT count(*) AS archived FROM pgmq.archive(%(queue)s, %(msg_ids)s::bigint[]);

-- name: queue_depth
-- Messages waiting in a queue (visible now or later).
SELECT queue_length AS depth FROM pgmq.metrics(%(queue)s);

-- name: transaction_async_commit
-- This transaction's commit need not wait for the WAL flush (used where losing it in a crash is harmless).
SET LOCAL synchronous_commit = off;
