-- name: retention_count
-- What a prune with this cutoff would remove, table by table (the dry run: reads only, locks nothing).
-- Finished means complete, cancelled or resolved_manually, the states no transition leaves ('error' can be
-- resumed); "finished at" is the task's last transition, and a task with a pending DLQ entry is kept.
WITH batch AS MATERIALIZED (
    SELECT tt.task_uuid
    FROM tasker.task_transitions tt
    WHERE tt.most_recent
      AND tt.to_state IN ('complete', 'cancelled', 'resolved_manually')
      AND tt.created_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM tasker.tasks_dlq d
                      WHERE d.task_uuid = tt.task_uuid AND d.resolution_status = 'pending')
),
steps AS MATERIALIZED (
    SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws WHERE ws.task_uuid IN (SELECT task_uuid FROM batch)
)
SELECT (SELECT count(*) FROM batch) AS tasks,
       (SELECT count(*) FROM steps) AS workflow_steps,
       (SELECT count(*) FROM tasker.workflow_step_edges e
        WHERE e.from_step_uuid IN (SELECT workflow_step_uuid FROM steps)
           OR e.to_step_uuid IN (SELECT workflow_step_uuid FROM steps)) AS workflow_step_edges,
       (SELECT count(*) FROM tasker.task_transitions x
        WHERE x.task_uuid IN (SELECT task_uuid FROM batch)) AS task_transitions,
       (SELECT count(*) FROM tasker.workflow_step_transitions x
        WHERE x.workflow_step_uuid IN (SELECT workflow_step_uuid FROM steps)) AS workflow_step_transitions,
       (SELECT count(*) FROM tasker.workflow_step_result_audit a
        WHERE a.workflow_step_uuid IN (SELECT workflow_step_uuid FROM steps)
           OR a.task_uuid IN (SELECT task_uuid FROM batch)) AS workflow_step_result_audit,
       (SELECT count(*) FROM tasker.tasks_dlq d WHERE d.task_uuid IN (SELECT task_uuid FROM batch)) AS tasks_dlq,
       (SELECT count(*) FROM tasker_ext.domain_events e WHERE e.task_uuid IN (SELECT task_uuid FROM batch))
           AS domain_events,
       (SELECT count(*) FROM tasker_ext.schedule_runs r WHERE r.created_at < %(cutoff)s) AS schedule_runs;

-- name: retention_prune_batch
-- Remove one batch of finished tasks (see retention_count for which) with every row that references them, and,
-- when archiving, write each task's whole history as one document first: one statement, so one transaction.
-- The tasks are locked FOR UPDATE SKIP LOCKED: a task an operator or orchestrator holds is left for a later
-- batch instead of waiting on it (or it on us). Rows are deleted children first; the foreign keys are checked at
-- the end of the statement, when every part is done. Every part reads the snapshot taken before any deletion.
WITH batch AS MATERIALIZED (
    SELECT t.task_uuid, tt.to_state AS final_state, tt.created_at AS finished_at
    FROM tasker.task_transitions tt
    JOIN tasker.tasks t ON t.task_uuid = tt.task_uuid
    WHERE tt.most_recent
      AND tt.to_state IN ('complete', 'cancelled', 'resolved_manually')
      AND tt.created_at < %(cutoff)s
      AND NOT EXISTS (SELECT 1 FROM tasker.tasks_dlq d
                      WHERE d.task_uuid = t.task_uuid AND d.resolution_status = 'pending')
    ORDER BY tt.created_at
    LIMIT %(batch_size)s
    FOR UPDATE OF t SKIP LOCKED
),
steps AS MATERIALIZED (
    SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws WHERE ws.task_uuid IN (SELECT task_uuid FROM batch)
),
archived AS (
    INSERT INTO tasker_ext.task_archive (task_uuid, namespace, name, version, final_state, finished_at, document)
    SELECT b.task_uuid, ns.name, nt.name, nt.version, b.final_state, b.finished_at,
           jsonb_build_object(
               'task', to_jsonb(t),
               'namespace', ns.name,
               'name', nt.name,
               'version', nt.version,
               'final_state', b.final_state,
               'finished_at', b.finished_at,
               'transitions', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.sort_key), '[]'::jsonb)
                               FROM tasker.task_transitions x WHERE x.task_uuid = b.task_uuid),
               'steps', (SELECT coalesce(jsonb_agg(
                                    to_jsonb(ws) || jsonb_build_object(
                                        'name', nst.name,
                                        'transitions',
                                        (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.sort_key), '[]'::jsonb)
                                         FROM tasker.workflow_step_transitions x
                                         WHERE x.workflow_step_uuid = ws.workflow_step_uuid),
                                        'result_audit',
                                        (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.recorded_at), '[]'::jsonb)
                                         FROM tasker.workflow_step_result_audit a
                                         WHERE a.workflow_step_uuid = ws.workflow_step_uuid))
                                    ORDER BY ws.workflow_step_uuid), '[]'::jsonb)
                         FROM tasker.workflow_steps ws
                         JOIN tasker.named_steps nst ON nst.named_step_uuid = ws.named_step_uuid
                         WHERE ws.task_uuid = b.task_uuid),
               'edges', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.workflow_step_edge_uuid), '[]'::jsonb)
                         FROM tasker.workflow_step_edges e
                         JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = e.from_step_uuid
                         WHERE ws.task_uuid = b.task_uuid),
               'dlq_entries', (SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.dlq_timestamp), '[]'::jsonb)
                               FROM tasker.tasks_dlq d WHERE d.task_uuid = b.task_uuid),
               'domain_events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.txid, e.event_uuid), '[]'::jsonb)
                                 FROM tasker_ext.domain_events e WHERE e.task_uuid = b.task_uuid))
    FROM batch b
    JOIN tasker.tasks t ON t.task_uuid = b.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE %(archive)s
    RETURNING 1
),
audit AS (
    DELETE FROM tasker.workflow_step_result_audit a
    WHERE a.workflow_step_uuid IN (SELECT workflow_step_uuid FROM steps)
       OR a.task_uuid IN (SELECT task_uuid FROM batch)
    RETURNING 1
),
edges AS (
    DELETE FROM tasker.workflow_step_edges e
    WHERE e.from_step_uuid IN (SELECT workflow_step_uuid FROM steps)
       OR e.to_step_uuid IN (SELECT workflow_step_uuid FROM steps)
    RETURNING 1
),
step_transitions AS (
    DELETE FROM tasker.workflow_step_transitions x
    WHERE x.workflow_step_uuid IN (SELECT workflow_step_uuid FROM steps)
    RETURNING 1
),
workflow_steps AS (
    DELETE FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid IN (SELECT workflow_step_uuid FROM steps)
    RETURNING 1
),
task_transitions AS (
    DELETE FROM tasker.task_transitions x WHERE x.task_uuid IN (SELECT task_uuid FROM batch) RETURNING 1
),
dlq AS (
    DELETE FROM tasker.tasks_dlq d WHERE d.task_uuid IN (SELECT task_uuid FROM batch) RETURNING 1
),
tasks AS (
    DELETE FROM tasker.tasks t WHERE t.task_uuid IN (SELECT task_uuid FROM batch) RETURNING 1
),
events AS (
    DELETE FROM tasker_ext.domain_events e WHERE e.task_uuid IN (SELECT task_uuid FROM batch) RETURNING 1
)
SELECT (SELECT count(*) FROM tasks) AS tasks,
       (SELECT count(*) FROM workflow_steps) AS workflow_steps,
       (SELECT count(*) FROM edges) AS workflow_step_edges,
       (SELECT count(*) FROM task_transitions) AS task_transitions,
       (SELECT count(*) FROM step_transitions) AS workflow_step_transitions,
       (SELECT count(*) FROM audit) AS workflow_step_result_audit,
       (SELECT count(*) FROM dlq) AS tasks_dlq,
       (SELECT count(*) FROM events) AS domain_events,
       (SELECT count(*) FROM archived) AS archived;

-- name: retention_schedule_runs_prune
-- One batch of schedule runs older than the cutoff (the schedule row keeps its last run and task).
WITH old AS (
    SELECT schedule_run_uuid FROM tasker_ext.schedule_runs
    WHERE created_at < %(cutoff)s
    ORDER BY created_at
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
),
removed AS (
    DELETE FROM tasker_ext.schedule_runs r USING old WHERE r.schedule_run_uuid = old.schedule_run_uuid RETURNING 1
)
SELECT count(*) AS deleted FROM removed;

-- name: retention_queue_names
-- The PGMQ queues, whose archive tables (pgmq.a_<queue>) keep every acknowledged message.
SELECT queue_name FROM pgmq.meta ORDER BY queue_name;

-- name: retention_queue_archive_count
-- Archived messages of one queue older than the cutoff ({archive_table} is filled in as an identifier).
SELECT count(*) AS old FROM pgmq.{archive_table} WHERE archived_at < %(cutoff)s;

-- name: retention_queue_archive_prune
-- One batch of archived messages of one queue older than the cutoff (archived_at is indexed by PGMQ).
WITH old AS (
    SELECT msg_id FROM pgmq.{archive_table}
    WHERE archived_at < %(cutoff)s
    ORDER BY archived_at
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
),
removed AS (DELETE FROM pgmq.{archive_table} a USING old WHERE a.msg_id = old.msg_id RETURNING 1)
SELECT count(*) AS deleted FROM removed;

-- name: retention_try_lock
-- One periodic prune at a time across orchestrators (session lock; released by retention_unlock).
SELECT pg_try_advisory_lock(hashtext('tasker.retention')) AS locked;

-- name: retention_unlock
SELECT pg_advisory_unlock(hashtext('tasker.retention')) AS unlocked;
