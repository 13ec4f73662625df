-- name: dlq_stale_candidates
-- Tasks the staleness sweep should act on, longest in their state first: waiting or processing past their
-- threshold (template lifecycle minutes, else the configured defaults) or older than their maximum lifetime,
-- without a pending DLQ entry, and not opted out (lifecycle.staleness_action = 'none'; left out here so they
-- cannot fill every batch). Reads only; the sweep locks and re-checks each task before writing.
SELECT s.task_uuid, s.correlation_id, s.namespace_name, s.task_name, s.task_version, s.current_state,
       s.state_entered_at, s.time_in_state_minutes, s.task_age_minutes, s.staleness_threshold_minutes,
       s.max_lifetime_minutes, s.staleness_action
FROM tasker.get_task_staleness(%(waiting_for_dependencies_minutes)s, %(waiting_for_retry_minutes)s,
                               %(steps_in_process_minutes)s, %(max_lifetime_hours)s) s
WHERE s.health_status = 'stale'
  AND NOT s.in_dlq
  AND s.staleness_action <> 'none'
ORDER BY s.time_in_state_minutes DESC, s.task_uuid
LIMIT %(batch_size)s;

-- name: dlq_stale_recheck
-- One task's staleness again, under its row lock: no row when it left the watched states, is no longer stale, or
-- got a pending DLQ entry meanwhile (another sweeper, or a max_retries_exceeded entry).
SELECT s.task_uuid, s.correlation_id, s.namespace_name, s.task_name, s.task_version, s.current_state,
       s.state_entered_at, s.time_in_state_minutes, s.task_age_minutes, s.staleness_threshold_minutes,
       s.max_lifetime_minutes, s.staleness_action
FROM tasker.get_task_staleness(%(waiting_for_dependencies_minutes)s, %(waiting_for_retry_minutes)s,
                               %(steps_in_process_minutes)s, %(max_lifetime_hours)s) s
WHERE s.task_uuid = %(task_uuid)s
  AND s.health_status = 'stale'
  AND NOT s.in_dlq;

-- name: dlq_staleness_monitoring
-- The staleness monitoring rows for the configured defaults (the view v_task_staleness_monitoring has the
-- built-in ones), optionally only one health status, least healthy and longest waiting first.
SELECT s.task_uuid, s.correlation_id, s.namespace_name, s.task_name, s.task_version, s.current_state,
       s.state_entered_at, s.time_in_state_minutes, s.task_age_minutes, s.staleness_threshold_minutes,
       s.max_lifetime_minutes, s.health_status, s.staleness_action, s.in_dlq, s.priority
FROM tasker.get_task_staleness(%(waiting_for_dependencies_minutes)s, %(waiting_for_retry_minutes)s,
                               %(steps_in_process_minutes)s, %(max_lifetime_hours)s) s
WHERE s.health_status = coalesce(%(health_status)s::text, s.health_status)
ORDER BY CASE s.health_status WHEN 'stale' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
         s.time_in_state_minutes DESC, s.task_uuid
LIMIT %(limit)s;

-- name: dlq_entry_insert
-- A new pending DLQ entry for a task, with a snapshot taken now: the task row, its template names, current state
-- and every step with its state, attempts, flags and the error part of its results (not the full results, which
-- may be large). At most one pending entry per task: when one exists this inserts nothing and returns no row.
INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot, metadata)
SELECT t.task_uuid,
       %(original_state)s,
       %(dlq_reason)s::tasker.dlq_reason,
       jsonb_build_object(
           'task', to_jsonb(t),
           'namespace_name', ns.name,
           'task_name', nt.name,
           'task_version', nt.version,
           'current_state', coalesce(tt.to_state, 'pending'),
           'state_entered_at', tt.created_at,
           'snapshot_timestamp', timezone('utc', now()),
           'steps', coalesce((
               SELECT jsonb_agg(jsonb_build_object(
                          'workflow_step_uuid', ws.workflow_step_uuid,
                          'name', n.name,
                          'current_state', coalesce(st.to_state, 'pending'),
                          'state_entered_at', st.created_at,
                          'attempts', coalesce(ws.attempts, 0),
                          'max_attempts', ws.max_attempts,
                          'retryable', ws.retryable,
                          'in_process', ws.in_process,
                          'processed', ws.processed,
                          'processed_at', ws.processed_at,
                          'last_attempted_at', ws.last_attempted_at,
                          'backoff_request_seconds', ws.backoff_request_seconds,
                          'success', ws.results -> 'success',
                          'error', ws.results -> 'error')
                      ORDER BY ws.workflow_step_uuid)
               FROM tasker.workflow_steps ws
               JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
               LEFT JOIN tasker.workflow_step_transitions st
                      ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
               WHERE ws.task_uuid = t.task_uuid
           ), '[]'::jsonb)
       ),
       %(metadata)s
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
WHERE t.task_uuid = %(task_uuid)s
ON CONFLICT (task_uuid) WHERE resolution_status = 'pending' DO NOTHING
RETURNING dlq_entry_uuid;

-- name: dlq_entry_count
-- How many entries match the list filters (each filter is optional), for pagination.
SELECT count(*)::bigint AS total
FROM tasker.tasks_dlq d
WHERE d.resolution_status = coalesce(%(resolution_status)s::tasker.dlq_resolution_status, d.resolution_status)
  AND d.dlq_reason = coalesce(%(dlq_reason)s::tasker.dlq_reason, d.dlq_reason)
  AND d.task_uuid = coalesce(%(task_uuid)s::uuid, d.task_uuid);

-- name: dlq_entry_page
-- One page of entries matching the list filters, newest first (every column, the snapshot included).
SELECT d.dlq_entry_uuid, d.task_uuid, d.original_state, d.dlq_reason::text AS dlq_reason, d.dlq_timestamp,
       d.resolution_status::text AS resolution_status, d.resolution_timestamp, d.resolution_notes, d.resolved_by,
       d.task_snapshot, d.metadata, d.created_at, d.updated_at
FROM tasker.tasks_dlq d
WHERE d.resolution_status = coalesce(%(resolution_status)s::tasker.dlq_resolution_status, d.resolution_status)
  AND d.dlq_reason = coalesce(%(dlq_reason)s::tasker.dlq_reason, d.dlq_reason)
  AND d.task_uuid = coalesce(%(task_uuid)s::uuid, d.task_uuid)
ORDER BY d.dlq_timestamp DESC, d.dlq_entry_uuid DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: dlq_entry_get
-- One entry by its id.
SELECT d.dlq_entry_uuid, d.task_uuid, d.original_state, d.dlq_reason::text AS dlq_reason, d.dlq_timestamp,
       d.resolution_status::text AS resolution_status, d.resolution_timestamp, d.resolution_notes, d.resolved_by,
       d.task_snapshot, d.metadata, d.created_at, d.updated_at
FROM tasker.tasks_dlq d
WHERE d.dlq_entry_uuid = %(dlq_entry_uuid)s;

-- name: dlq_entries_of_task
-- Every entry of one task, newest first: the open investigation (if any) and the history.
SELECT d.dlq_entry_uuid, d.task_uuid, d.original_state, d.dlq_reason::text AS dlq_reason, d.dlq_timestamp,
       d.resolution_status::text AS resolution_status, d.resolution_timestamp, d.resolution_notes, d.resolved_by,
       d.task_snapshot, d.metadata, d.created_at, d.updated_at
FROM tasker.tasks_dlq d
WHERE d.task_uuid = %(task_uuid)s
ORDER BY d.dlq_timestamp DESC, d.dlq_entry_uuid DESC;

-- name: dlq_entry_update
-- An operator records an outcome: each given field replaces the stored one (absent ones stay), metadata is merged
-- key by key, and giving a status stamps resolution_timestamp. Returns the updated entry, no row when unknown.
-- Moving an entry back to 'pending' while the task has another pending entry violates the one-pending index.
UPDATE tasker.tasks_dlq d
SET resolution_status = coalesce(%(resolution_status)s::tasker.dlq_resolution_status, d.resolution_status),
    resolution_timestamp = CASE WHEN %(resolution_status)s::text IS NULL THEN d.resolution_timestamp
                                ELSE timezone('utc', now()) END,
    resolution_notes = coalesce(%(resolution_notes)s::text, d.resolution_notes),
    resolved_by = coalesce(%(resolved_by)s::text, d.resolved_by),
    metadata = CASE WHEN %(metadata)s::jsonb IS NULL THEN d.metadata
                    ELSE coalesce(d.metadata, '{}'::jsonb) || %(metadata)s::jsonb END,
    updated_at = timezone('utc', now())
WHERE d.dlq_entry_uuid = %(dlq_entry_uuid)s
RETURNING d.dlq_entry_uuid, d.task_uuid, d.original_state, d.dlq_reason::text AS dlq_reason, d.dlq_timestamp,
          d.resolution_status::text AS resolution_status, d.resolution_timestamp, d.resolution_notes,
          d.resolved_by, d.task_snapshot, d.metadata, d.created_at, d.updated_at;

-- name: dlq_stats
-- The dashboard: per reason, counts by resolution status, oldest/newest and mean resolution time.
SELECT dlq_reason, total_entries, pending, manually_resolved, permanent_failures, cancelled, oldest_entry,
       newest_entry, avg_resolution_time_minutes
FROM tasker.v_dlq_dashboard
ORDER BY dlq_reason;

-- name: dlq_investigation_queue
-- Pending entries, most urgent first (the view's order: reason base + minutes in the queue).
SELECT dlq_entry_uuid, task_uuid, namespace_name, task_name, task_version, original_state, current_state,
       dlq_reason, dlq_timestamp, minutes_in_dlq, time_in_state_minutes, priority_score, metadata
FROM tasker.v_dlq_investigation_queue
LIMIT %(limit)s;
