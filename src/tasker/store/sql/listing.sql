-- name: task_list_count
-- How many tasks match the listing filters (the page total of GET /v1/tasks). A NULL filter matches everything.
SELECT count(*)::bigint AS total_count
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
WHERE (%(namespace)s::text IS NULL OR ns.name = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR nt.name = %(name)s::text)
  AND (%(state)s::text IS NULL OR COALESCE(tt.to_state, 'pending') = %(state)s::text)
  AND (%(initiator)s::text IS NULL OR t.initiator = %(initiator)s::text)
  AND (%(source_system)s::text IS NULL OR t.source_system = %(source_system)s::text);

-- name: task_list_page
-- One page of matching task ids, newest first; task_uuid (UUID v7) breaks ties so pages never overlap.
SELECT t.task_uuid
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
WHERE (%(namespace)s::text IS NULL OR ns.name = %(namespace)s::text)
  AND (%(name)s::text IS NULL OR nt.name = %(name)s::text)
  AND (%(state)s::text IS NULL OR COALESCE(tt.to_state, 'pending') = %(state)s::text)
  AND (%(initiator)s::text IS NULL OR t.initiator = %(initiator)s::text)
  AND (%(source_system)s::text IS NULL OR t.source_system = %(source_system)s::text)
ORDER BY t.created_at DESC, t.task_uuid DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: task_details_many
-- Tasks as the API shows them: columns, template names, current state and the step counts and execution status
-- of the execution-context function, in the order of the given ids (missing ids yield no row).
SELECT t.task_uuid, nt.name, ns.name AS namespace, nt.version, t.named_task_uuid,
       COALESCE(tt.to_state, 'pending') AS status, t.created_at, t.updated_at, t.completed_at, t.context,
       t.initiator, t.source_system, t.reason, t.priority, t.tags, t.correlation_id, t.parent_correlation_id,
       c.total_steps, c.pending_steps, c.in_progress_steps, c.completed_steps, c.failed_steps, c.ready_steps,
       c.execution_status, c.recommended_action, c.completion_percentage, c.health_status
FROM unnest(%(task_uuids)s::uuid[]) WITH ORDINALITY AS given(task_uuid, position)
JOIN tasker.tasks t ON t.task_uuid = given.task_uuid
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
LEFT JOIN tasker.get_task_execution_contexts_batch(%(task_uuids)s::uuid[]) c ON c.task_uuid = t.task_uuid
ORDER BY given.position;

-- name: step_details
-- Steps of a task as the API shows them: readiness (dependencies, retry eligibility, next retry) from the
-- readiness function plus the stored columns; optionally only some steps. Creation order.
SELECT r.workflow_step_uuid AS step_uuid, r.task_uuid, r.name, ws.created_at, ws.updated_at,
       ws.processed_at AS completed_at, ws.results, COALESCE(r.current_state, 'pending') AS current_state,
       r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution, r.total_parents, r.completed_parents,
       r.attempts, r.max_attempts, r.last_failure_at, r.next_retry_at, r.last_attempted_at
FROM tasker.get_step_readiness_status(%(task_uuid)s, %(step_uuids)s::uuid[]) r
JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = r.workflow_step_uuid
ORDER BY ws.created_at, ws.workflow_step_uuid;

-- name: step_audit_list
-- The result audit trail of one step of one task, newest first, joined back to the transition each row records
-- (the audit table itself holds no payload). The stored result is shown on the newest row only: older attempts'
-- results were overwritten when the step ran again.
SELECT a.workflow_step_result_audit_uuid AS audit_uuid, a.workflow_step_uuid,
       a.workflow_step_transition_uuid AS transition_uuid, a.task_uuid, a.recorded_at, a.worker_uuid,
       a.correlation_id, a.success, a.execution_time_ms,
       CASE WHEN row_number() OVER (ORDER BY a.recorded_at DESC, a.workflow_step_result_audit_uuid DESC) = 1
            THEN ws.results END AS result,
       n.name AS step_name, tr.from_state, tr.to_state
FROM tasker.workflow_step_result_audit a
JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = a.workflow_step_uuid
JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
JOIN tasker.workflow_step_transitions tr ON tr.workflow_step_transition_uuid = a.workflow_step_transition_uuid
WHERE a.task_uuid = %(task_uuid)s AND a.workflow_step_uuid = %(step_uuid)s
ORDER BY a.recorded_at DESC, a.workflow_step_result_audit_uuid DESC;

-- name: dlq_status_for_task
-- The newest dead-letter entry of a task, if any, for the task summary.
SELECT dlq_reason::text AS dlq_reason, resolution_status::text AS resolution_status, dlq_timestamp
FROM tasker.tasks_dlq
WHERE task_uuid = %(task_uuid)s
ORDER BY dlq_timestamp DESC
LIMIT 1;

-- name: state_counts
-- Tasks and steps per current state (health, /metrics, analytics): one row per kind and state that occurs.
SELECT 'task' AS kind, COALESCE(tt.to_state, 'pending') AS state, count(*)::bigint AS count
FROM tasker.tasks t
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
GROUP BY 2
UNION ALL
SELECT 'step', COALESCE(st.to_state, 'pending'), count(*)::bigint
FROM tasker.workflow_steps s
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent
GROUP BY 2;

-- name: queue_names
-- PGMQ queues whose table exists (a queue being created or dropped concurrently is left out, so counting the
-- listed ones cannot fail the way pgmq.metrics_all can); depths are then read queue by queue.
SELECT m.queue_name
FROM pgmq.meta m
WHERE to_regclass(format('pgmq.%I', 'q_' || m.queue_name)) IS NOT NULL
ORDER BY m.queue_name;

-- name: worker_connection_count
-- Worker processes connected to this database: workers connect as application_name 'tasker-worker' (store/db.py,
-- worker/process.py), and application_name is visible in pg_stat_activity to every role. Zero means a new task's
-- steps will wait; the name does not say which namespaces a worker serves.
SELECT count(*) AS workers
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'tasker-worker';

-- name: queue_unread_count
-- Messages of one queue ({queue_table} is filled in with its quoted table name) that have been visible for over
-- `seconds` seconds and never read: nobody polls that queue, so no running worker serves its namespace. A delayed
-- message (a retry's backoff) counts only from when it became visible.
SELECT count(*) AS messages, EXTRACT(EPOCH FROM clock_timestamp() - min(vt))::float8 AS oldest_seconds
FROM pgmq.{queue_table}
WHERE read_ct = 0 AND vt <= clock_timestamp() - make_interval(secs => %(seconds)s);

-- name: analytics_performance
-- Task and step throughput since `since` (tasker.get_analytics_metrics, migration 0005), in the API's field names.
SELECT task_throughput AS total_tasks, completion_count AS completed_tasks, error_count AS failed_tasks,
       active_tasks_count AS active_tasks, avg_task_duration_seconds AS average_task_duration_seconds,
       avg_step_duration_seconds AS average_step_duration_seconds, step_throughput AS total_steps
FROM tasker.get_analytics_metrics(%(since)s);

-- name: analytics_slow_steps
-- Slowest step kinds since `since`, over steps that finished (complete or error): mean and max time from the
-- step's creation to its final transition, grouped by template and step name, with their error rate.
SELECT ns.name AS namespace_name, nt.name AS task_name, nt.version, n.name AS step_name,
       avg(extract(epoch FROM st.created_at - ws.created_at))::float8 AS average_duration_seconds,
       max(extract(epoch FROM st.created_at - ws.created_at))::float8 AS max_duration_seconds,
       count(*)::bigint AS execution_count,
       (count(*) FILTER (WHERE st.to_state = 'error'))::bigint AS error_count,
       round((count(*) FILTER (WHERE st.to_state = 'error'))::numeric / count(*), 4)::float8 AS error_rate,
       max(st.created_at) AS last_executed_at
FROM tasker.workflow_steps ws
JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
WHERE st.to_state IN ('complete', 'error') AND ws.created_at >= %(since)s
GROUP BY ns.name, nt.name, nt.version, n.name
HAVING count(*) >= %(min_executions)s
ORDER BY average_duration_seconds DESC
LIMIT %(limit)s;

-- name: analytics_slow_tasks
-- Slowest task kinds since `since`, over tasks that ended complete or error: mean and max time from creation to
-- the final transition, per template, with mean step count and error rate.
WITH finished AS (
    SELECT t.task_uuid, t.named_task_uuid, tt.to_state, extract(epoch FROM tt.created_at - t.created_at) AS seconds,
           tt.created_at AS ended_at,
           (SELECT count(*) FROM tasker.workflow_steps ws WHERE ws.task_uuid = t.task_uuid) AS step_count
    FROM tasker.tasks t
    JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
    WHERE tt.to_state IN ('complete', 'error') AND t.created_at >= %(since)s
)
SELECT ns.name AS namespace_name, nt.name AS task_name, nt.version,
       avg(f.seconds)::float8 AS average_duration_seconds, max(f.seconds)::float8 AS max_duration_seconds,
       count(*)::bigint AS execution_count, avg(f.step_count)::float8 AS average_step_count,
       (count(*) FILTER (WHERE f.to_state = 'error'))::bigint AS error_count,
       round((count(*) FILTER (WHERE f.to_state = 'error'))::numeric / count(*), 4)::float8 AS error_rate,
       max(f.ended_at) AS last_executed_at
FROM finished f
JOIN tasker.named_tasks nt ON nt.named_task_uuid = f.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
GROUP BY ns.name, nt.name, nt.version
HAVING count(*) >= %(min_executions)s
ORDER BY average_duration_seconds DESC
LIMIT %(limit)s;

-- name: state_counts_by_namespace
-- Tasks and steps per namespace and current state, for the Prometheus gauges of /metrics.
SELECT 'task' AS kind, ns.name AS namespace, COALESCE(tt.to_state, 'pending') AS state, count(*)::bigint AS count
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
GROUP BY 2, 3
UNION ALL
SELECT 'step', ns.name, COALESCE(st.to_state, 'pending'), count(*)::bigint
FROM tasker.workflow_steps s
JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent
GROUP BY 2, 3;

-- name: dlq_counts
-- Dead-letter queue entries per reason and resolution status, for /metrics.
SELECT dlq_reason::text AS dlq_reason, resolution_status::text AS resolution_status, count(*)::bigint AS count
FROM tasker.tasks_dlq
GROUP BY 1, 2;
