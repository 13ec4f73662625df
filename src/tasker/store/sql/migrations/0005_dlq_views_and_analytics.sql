-- 0005_dlq_views_and_analytics: what an operator reads when work gets stuck (task state analysis, staleness
-- monitoring, the dead-letter dashboard and investigation queue) and the analytics functions behind the dashboards.
--
-- Nothing here changes a row: the staleness sweep is Python (engine.staleness) calling named statements, so every
-- task state change goes through the one guarded transition API. Conventions as in 0003: "now" is
-- timezone('utc', now()); a task's current state is its most_recent transition, none meaning 'pending'; durations
-- are float8 minutes or seconds rounded to 2 decimals.

-- ---------------------------------------------------------------------------------------------------------------
-- Staleness thresholds
-- ---------------------------------------------------------------------------------------------------------------

-- A positive number of minutes read from configuration->'lifecycle'->key, else NULL (absent, null, not a number,
-- zero or negative), so a malformed template falls back to the configured default instead of failing the sweep.
CREATE FUNCTION tasker.lifecycle_minutes(template_config jsonb, key text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof($1 -> 'lifecycle' -> $2) = 'number' AND ($1 -> 'lifecycle' ->> $2)::numeric > 0
            THEN ceil(($1 -> 'lifecycle' ->> $2)::numeric)::integer
    END
$$;

-- How long a task may stay in a state before it counts as stale, in minutes: the template's lifecycle value for
-- that state when it has one, else the default passed in (the process configuration). States the sweep does not
-- watch get one day, so the function is total.
CREATE FUNCTION tasker.calculate_staleness_threshold(
    state text,
    template_config jsonb,
    default_waiting_for_dependencies_minutes integer DEFAULT 60,
    default_waiting_for_retry_minutes integer DEFAULT 30,
    default_steps_in_process_minutes integer DEFAULT 30
)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE $1
        WHEN 'waiting_for_dependencies'
            THEN coalesce(tasker.lifecycle_minutes($2, 'max_waiting_for_dependencies_minutes'), $3)
        WHEN 'waiting_for_retry'
            THEN coalesce(tasker.lifecycle_minutes($2, 'max_waiting_for_retry_minutes'), $4)
        WHEN 'steps_in_process'
            THEN coalesce(tasker.lifecycle_minutes($2, 'max_steps_in_process_minutes'), $5)
        ELSE 1440
    END
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Task state analysis
-- ---------------------------------------------------------------------------------------------------------------

-- Every incomplete task (tasks.complete = false, so error/cancelled tasks too) with its template, current state and
-- how long it has been there.
CREATE VIEW tasker.v_task_state_analysis AS
SELECT t.task_uuid,
       t.correlation_id,
       ns.task_namespace_uuid,
       ns.name::text AS namespace_name,
       nt.named_task_uuid,
       nt.name::text AS task_name,
       nt.version::text AS task_version,
       nt.configuration AS template_config,
       coalesce(tt.to_state, 'pending')::text AS current_state,
       coalesce(tt.created_at, t.created_at) AS state_entered_at,
       round((extract(epoch FROM timezone('utc', now()) - coalesce(tt.created_at, t.created_at)) / 60.0)::numeric,
             2)::float8 AS time_in_state_minutes,
       round((extract(epoch FROM timezone('utc', now()) - t.created_at) / 60.0)::numeric, 2)::float8
           AS task_age_minutes,
       t.priority,
       t.complete
FROM tasker.tasks t
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
WHERE NOT t.complete;

COMMENT ON VIEW tasker.v_task_state_analysis IS
    'Incomplete tasks with namespace, template, current state, time in that state and age (minutes)';

-- Tasks in the three watched states (waiting_for_dependencies, waiting_for_retry, steps_in_process) with their
-- thresholds and health, given the configured defaults:
--   staleness_threshold_minutes = calculate_staleness_threshold(state, template, defaults)
--   max_lifetime_minutes        = lifecycle.max_duration_minutes, else max_lifetime_hours * 60
--   health_status               = 'stale' when time in state >= threshold or age >= lifetime, 'warning' at >= 80 %
--                                 of either, else 'healthy'
--   staleness_action            = lifecycle.staleness_action ('dlq' | 'error' | 'none'), default 'dlq'
--   in_dlq                      = the task has a pending DLQ entry
-- Driven from the current transitions in those states (idx_task_transitions_current_state), so its cost follows
-- the tasks in flight, not all tasks ever run. Inlined into the caller's query (LANGUAGE sql, STABLE, no SET), so
-- a filter on task_uuid becomes an index lookup.
CREATE FUNCTION tasker.get_task_staleness(
    default_waiting_for_dependencies_minutes integer DEFAULT 60,
    default_waiting_for_retry_minutes integer DEFAULT 30,
    default_steps_in_process_minutes integer DEFAULT 30,
    max_lifetime_hours integer DEFAULT 24
)
RETURNS TABLE (
    task_uuid uuid,
    correlation_id uuid,
    namespace_name text,
    task_name text,
    task_version text,
    current_state text,
    state_entered_at timestamp,
    time_in_state_minutes float8,
    task_age_minutes float8,
    staleness_threshold_minutes integer,
    max_lifetime_minutes integer,
    health_status text,
    staleness_action text,
    in_dlq boolean,
    priority integer
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT s.task_uuid,
           s.correlation_id,
           s.namespace_name,
           s.task_name,
           s.task_version,
           s.current_state,
           s.state_entered_at,
           round(s.in_state_minutes::numeric, 2)::float8,
           round(s.age_minutes::numeric, 2)::float8,
           s.threshold,
           s.lifetime,
           CASE
               WHEN s.in_state_minutes >= s.threshold OR s.age_minutes >= s.lifetime THEN 'stale'
               WHEN s.in_state_minutes >= 0.8 * s.threshold OR s.age_minutes >= 0.8 * s.lifetime THEN 'warning'
               ELSE 'healthy'
           END,
           s.action,
           s.in_dlq,
           s.priority
    FROM (
        SELECT t.task_uuid,
               t.correlation_id,
               ns.name::text AS namespace_name,
               nt.name::text AS task_name,
               nt.version::text AS task_version,
               tt.to_state::text AS current_state,
               tt.created_at AS state_entered_at,
               extract(epoch FROM timezone('utc', now()) - tt.created_at)::float8 / 60.0 AS in_state_minutes,
               extract(epoch FROM timezone('utc', now()) - t.created_at)::float8 / 60.0 AS age_minutes,
               tasker.calculate_staleness_threshold(tt.to_state, nt.configuration, $1, $2, $3) AS threshold,
               coalesce(tasker.lifecycle_minutes(nt.configuration, 'max_duration_minutes'), $4 * 60) AS lifetime,
               coalesce(nt.configuration -> 'lifecycle' ->> 'staleness_action', 'dlq') AS action,
               EXISTS (SELECT 1 FROM tasker.tasks_dlq d
                       WHERE d.task_uuid = t.task_uuid AND d.resolution_status = 'pending') AS in_dlq,
               t.priority
        FROM tasker.task_transitions tt
        JOIN tasker.tasks t ON t.task_uuid = tt.task_uuid
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        WHERE tt.most_recent
          AND tt.to_state IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process')
    ) s
$$;

-- The same rows with the built-in defaults (60/30/30 minutes, 24 hours); a process with other configured defaults
-- calls tasker.get_task_staleness(...) with them (store.dlq.dlq_staleness_monitoring does).
CREATE VIEW tasker.v_task_staleness_monitoring AS
SELECT * FROM tasker.get_task_staleness(60, 30, 30, 24);

COMMENT ON VIEW tasker.v_task_staleness_monitoring IS
    'Tasks waiting or processing, with their staleness threshold and health (stale, warning at 80 %, healthy)';

-- ---------------------------------------------------------------------------------------------------------------
-- Dead-letter queue
-- ---------------------------------------------------------------------------------------------------------------

-- Per reason: how many entries are in each resolution status, the oldest and newest, and how long resolved
-- entries took to resolve on average (NULL while none is resolved; open entries do not count).
CREATE VIEW tasker.v_dlq_dashboard AS
SELECT d.dlq_reason::text AS dlq_reason,
       count(*)::bigint AS total_entries,
       (count(*) FILTER (WHERE d.resolution_status = 'pending'))::bigint AS pending,
       (count(*) FILTER (WHERE d.resolution_status = 'manually_resolved'))::bigint AS manually_resolved,
       (count(*) FILTER (WHERE d.resolution_status = 'permanently_failed'))::bigint AS permanent_failures,
       (count(*) FILTER (WHERE d.resolution_status = 'cancelled'))::bigint AS cancelled,
       min(d.dlq_timestamp) AS oldest_entry,
       max(d.dlq_timestamp) AS newest_entry,
       round((avg(extract(epoch FROM d.resolution_timestamp - d.dlq_timestamp) / 60.0)
              FILTER (WHERE d.resolution_status <> 'pending' AND d.resolution_timestamp IS NOT NULL))::numeric,
             2)::float8 AS avg_resolution_time_minutes
FROM tasker.tasks_dlq d
GROUP BY d.dlq_reason;

COMMENT ON VIEW tasker.v_dlq_dashboard IS
    'Dead-letter entries per reason: counts by resolution status, oldest/newest, mean resolution time (minutes)';

-- Open (pending) entries, most urgent first. priority_score = base by reason + minutes in the DLQ, the base being
-- 1000 dependency_cycle_detected, 500 max_retries_exceeded, 100 staleness_timeout, 50 worker_unavailable,
-- 10 manual_dlq: a cycle is always looked at before a stale task, and an old entry overtakes a newer one of a
-- higher class after enough minutes. Names and the current state come from the live rows, the time in state at
-- detection from the entry's metadata.
CREATE VIEW tasker.v_dlq_investigation_queue AS
SELECT q.dlq_entry_uuid,
       q.task_uuid,
       q.namespace_name,
       q.task_name,
       q.task_version,
       q.original_state,
       q.current_state,
       q.dlq_reason,
       q.dlq_timestamp,
       q.minutes_in_dlq,
       q.time_in_state_minutes,
       round((q.base + q.minutes_in_dlq)::numeric, 2)::float8 AS priority_score,
       q.metadata
FROM (
    SELECT d.dlq_entry_uuid,
           d.task_uuid,
           ns.name::text AS namespace_name,
           nt.name::text AS task_name,
           nt.version::text AS task_version,
           d.original_state::text AS original_state,
           coalesce(tt.to_state, 'pending')::text AS current_state,
           d.dlq_reason::text AS dlq_reason,
           d.dlq_timestamp,
           round((extract(epoch FROM timezone('utc', now()) - d.dlq_timestamp) / 60.0)::numeric, 2)::float8
               AS minutes_in_dlq,
           CASE WHEN jsonb_typeof(d.metadata -> 'time_in_state_minutes') = 'number'
                THEN (d.metadata ->> 'time_in_state_minutes')::float8 END AS time_in_state_minutes,
           CASE d.dlq_reason
               WHEN 'dependency_cycle_detected' THEN 1000
               WHEN 'max_retries_exceeded' THEN 500
               WHEN 'staleness_timeout' THEN 100
               WHEN 'worker_unavailable' THEN 50
               ELSE 10
           END AS base,
           d.metadata
    FROM tasker.tasks_dlq d
    JOIN tasker.tasks t ON t.task_uuid = d.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = d.task_uuid AND tt.most_recent
    WHERE d.resolution_status = 'pending'
) q
ORDER BY priority_score DESC, q.dlq_timestamp, q.dlq_entry_uuid;

COMMENT ON VIEW tasker.v_dlq_investigation_queue IS
    'Pending dead-letter entries with minutes in the queue and a priority score (reason base + minutes), most urgent first';

-- ---------------------------------------------------------------------------------------------------------------
-- Analytics
-- ---------------------------------------------------------------------------------------------------------------

-- One row: tasks per current state (all 12, zero when none) and steps per current state (all 10), with totals.
CREATE FUNCTION tasker.get_system_health_counts()
RETURNS TABLE (
    total_tasks bigint,
    pending_tasks bigint,
    initializing_tasks bigint,
    enqueuing_steps_tasks bigint,
    steps_in_process_tasks bigint,
    evaluating_results_tasks bigint,
    waiting_for_dependencies_tasks bigint,
    waiting_for_retry_tasks bigint,
    blocked_by_failures_tasks bigint,
    complete_tasks bigint,
    error_tasks bigint,
    cancelled_tasks bigint,
    resolved_manually_tasks bigint,
    total_steps bigint,
    pending_steps bigint,
    enqueued_steps bigint,
    in_progress_steps bigint,
    enqueued_for_orchestration_steps bigint,
    enqueued_as_error_for_orchestration_steps bigint,
    waiting_for_retry_steps bigint,
    complete_steps bigint,
    error_steps bigint,
    cancelled_steps bigint,
    resolved_manually_steps bigint
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH task_states AS (
        SELECT coalesce(tt.to_state, 'pending') AS state
        FROM tasker.tasks t
        LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
    ),
    step_states AS (
        SELECT coalesce(st.to_state, 'pending') AS state
        FROM tasker.workflow_steps ws
        LEFT JOIN tasker.workflow_step_transitions st
               ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
    ),
    tc AS (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE state = 'pending') AS pending,
               count(*) FILTER (WHERE state = 'initializing') AS initializing,
               count(*) FILTER (WHERE state = 'enqueuing_steps') AS enqueuing_steps,
               count(*) FILTER (WHERE state = 'steps_in_process') AS steps_in_process,
               count(*) FILTER (WHERE state = 'evaluating_results') AS evaluating_results,
               count(*) FILTER (WHERE state = 'waiting_for_dependencies') AS waiting_for_dependencies,
               count(*) FILTER (WHERE state = 'waiting_for_retry') AS waiting_for_retry,
               count(*) FILTER (WHERE state = 'blocked_by_failures') AS blocked_by_failures,
               count(*) FILTER (WHERE state = 'complete') AS complete,
               count(*) FILTER (WHERE state = 'error') AS error,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE state = 'resolved_manually') AS resolved_manually
        FROM task_states
    ),
    sc AS (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE state = 'pending') AS pending,
               count(*) FILTER (WHERE state = 'enqueued') AS enqueued,
               count(*) FILTER (WHERE state = 'in_progress') AS in_progress,
               count(*) FILTER (WHERE state = 'enqueued_for_orchestration') AS enqueued_for_orchestration,
               count(*) FILTER (WHERE state = 'enqueued_as_error_for_orchestration') AS enqueued_as_error,
               count(*) FILTER (WHERE state = 'waiting_for_retry') AS waiting_for_retry,
               count(*) FILTER (WHERE state = 'complete') AS complete,
               count(*) FILTER (WHERE state = 'error') AS error,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE state = 'resolved_manually') AS resolved_manually
        FROM step_states
    )
    SELECT tc.total, tc.pending, tc.initializing, tc.enqueuing_steps, tc.steps_in_process, tc.evaluating_results,
           tc.waiting_for_dependencies, tc.waiting_for_retry, tc.blocked_by_failures, tc.complete, tc.error,
           tc.cancelled, tc.resolved_manually,
           sc.total, sc.pending, sc.enqueued, sc.in_progress, sc.enqueued_for_orchestration, sc.enqueued_as_error,
           sc.waiting_for_retry, sc.complete, sc.error, sc.cancelled, sc.resolved_manually
    FROM tc CROSS JOIN sc
$$;

-- One row of system metrics. Over all tasks: active_tasks_count (current state not terminal), namespaces and task
-- types that have tasks. Over the tasks created since `since`: task_throughput (how many), completion_count
-- (now complete), error_count (now error), completion_rate and error_rate (% of throughput), step_throughput
-- (their steps), system_health_score = completions / (completions + errors), 1.0 when neither happened;
-- avg_task_duration_seconds (creation to completion, completed ones), avg_step_duration_seconds (first enqueue,
-- else creation, to the transition into complete, completed steps). Here completions and errors are task
-- outcomes, not step transitions.
CREATE FUNCTION tasker.get_analytics_metrics(since timestamp DEFAULT timezone('utc', now()) - interval '1 hour')
RETURNS TABLE (
    active_tasks_count bigint,
    total_namespaces_count bigint,
    unique_task_types_count bigint,
    system_health_score float8,
    task_throughput bigint,
    completion_count bigint,
    error_count bigint,
    completion_rate float8,
    error_rate float8,
    step_throughput bigint,
    avg_task_duration_seconds float8,
    avg_step_duration_seconds float8
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH everything AS (
        SELECT count(*) FILTER (WHERE coalesce(tt.to_state, 'pending')
                                      NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')) AS active,
               count(DISTINCT nt.task_namespace_uuid) AS namespaces,
               count(DISTINCT t.named_task_uuid) AS task_types
        FROM tasker.tasks t
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
    ),
    recent AS (
        SELECT t.task_uuid,
               coalesce(tt.to_state, 'pending') AS state,
               CASE WHEN tt.to_state = 'complete'
                    THEN extract(epoch FROM coalesce(t.completed_at, tt.created_at) - t.created_at)::float8
               END AS seconds
        FROM tasker.tasks t
        LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
        WHERE t.created_at >= $1
    ),
    recent_tasks AS (
        SELECT count(*) AS throughput,
               count(*) FILTER (WHERE state = 'complete') AS completions,
               count(*) FILTER (WHERE state = 'error') AS errors,
               avg(seconds) AS avg_seconds
        FROM recent
    ),
    recent_steps AS (
        SELECT count(*) AS throughput,
               avg(extract(epoch FROM st.created_at - coalesce(
                       (SELECT min(e.created_at) FROM tasker.workflow_step_transitions e
                        WHERE e.workflow_step_uuid = ws.workflow_step_uuid AND e.to_state = 'enqueued'),
                       ws.created_at))::float8) FILTER (WHERE st.to_state = 'complete') AS avg_seconds
        FROM recent r
        JOIN tasker.workflow_steps ws ON ws.task_uuid = r.task_uuid
        LEFT JOIN tasker.workflow_step_transitions st
               ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
    )
    SELECT e.active,
           e.namespaces,
           e.task_types,
           CASE WHEN rt.completions + rt.errors = 0 THEN 1.0::float8
                ELSE round(rt.completions::numeric / (rt.completions + rt.errors), 4)::float8 END,
           rt.throughput,
           rt.completions,
           rt.errors,
           CASE WHEN rt.throughput = 0 THEN 0.0::float8
                ELSE round(rt.completions * 100.0 / rt.throughput, 2)::float8 END,
           CASE WHEN rt.throughput = 0 THEN 0.0::float8
                ELSE round(rt.errors * 100.0 / rt.throughput, 2)::float8 END,
           rs.throughput,
           round(rt.avg_seconds::numeric, 3)::float8,
           round(rs.avg_seconds::numeric, 3)::float8
    FROM everything e CROSS JOIN recent_tasks rt CROSS JOIN recent_steps rs
$$;

-- The slowest finished steps (current state complete or error) of tasks created since `since`, optionally of one
-- namespace / task name / version, slowest first. duration_seconds = the transition into the final state minus
-- the step's first enqueue (its creation when it was never enqueued), so time spent waiting for parents does not
-- count, while queueing and retries do.
CREATE FUNCTION tasker.get_slowest_steps(
    since timestamp DEFAULT timezone('utc', now()) - interval '24 hours',
    p_limit integer DEFAULT 10,
    p_namespace text DEFAULT NULL,
    p_task_name text DEFAULT NULL,
    p_version text DEFAULT NULL
)
RETURNS TABLE (
    workflow_step_uuid uuid,
    task_uuid uuid,
    step_name text,
    namespace_name text,
    task_name text,
    task_version text,
    current_state text,
    started_at timestamp,
    finished_at timestamp,
    duration_seconds float8,
    attempts integer,
    max_attempts integer,
    retryable boolean
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT s.workflow_step_uuid, s.task_uuid, s.step_name, s.namespace_name, s.task_name, s.task_version,
           s.current_state, s.started_at, s.finished_at,
           round(extract(epoch FROM s.finished_at - s.started_at)::numeric, 3)::float8 AS duration_seconds,
           s.attempts, s.max_attempts, s.retryable
    FROM (
        SELECT ws.workflow_step_uuid,
               ws.task_uuid,
               n.name::text AS step_name,
               ns.name::text AS namespace_name,
               nt.name::text AS task_name,
               nt.version::text AS task_version,
               st.to_state::text AS current_state,
               coalesce((SELECT min(e.created_at) FROM tasker.workflow_step_transitions e
                         WHERE e.workflow_step_uuid = ws.workflow_step_uuid AND e.to_state = 'enqueued'),
                        ws.created_at) AS started_at,
               st.created_at AS finished_at,
               coalesce(ws.attempts, 0) AS attempts,
               coalesce(ws.max_attempts, 3) AS max_attempts,
               ws.retryable
        FROM tasker.tasks t
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        JOIN tasker.workflow_steps ws ON ws.task_uuid = t.task_uuid
        JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
        JOIN tasker.workflow_step_transitions st
          ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
        WHERE t.created_at >= $1
          AND st.to_state IN ('complete', 'error')
          AND ($3 IS NULL OR ns.name = $3)
          AND ($4 IS NULL OR nt.name = $4)
          AND ($5 IS NULL OR nt.version = $5)
    ) s
    ORDER BY duration_seconds DESC, s.workflow_step_uuid
    LIMIT $2
$$;

-- The slowest finished tasks (current state complete or error) created since `since`, optionally of one
-- namespace / task name / version, slowest first. duration_seconds = the transition into the final state minus the
-- task's creation; with step counts (all, complete or resolved, error).
CREATE FUNCTION tasker.get_slowest_tasks(
    since timestamp DEFAULT timezone('utc', now()) - interval '24 hours',
    p_limit integer DEFAULT 10,
    p_namespace text DEFAULT NULL,
    p_task_name text DEFAULT NULL,
    p_version text DEFAULT NULL
)
RETURNS TABLE (
    task_uuid uuid,
    namespace_name text,
    task_name text,
    task_version text,
    current_state text,
    created_at timestamp,
    finished_at timestamp,
    duration_seconds float8,
    step_count bigint,
    completed_steps bigint,
    error_steps bigint,
    initiator text
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT t.task_uuid,
           ns.name::text,
           nt.name::text,
           nt.version::text,
           tt.to_state::text,
           t.created_at,
           tt.created_at,
           round(extract(epoch FROM tt.created_at - t.created_at)::numeric, 3)::float8 AS duration_seconds,
           c.step_count,
           c.completed_steps,
           c.error_steps,
           t.initiator::text
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
    CROSS JOIN LATERAL (
        SELECT count(*) AS step_count,
               count(*) FILTER (WHERE st.to_state IN ('complete', 'resolved_manually')) AS completed_steps,
               count(*) FILTER (WHERE st.to_state = 'error') AS error_steps
        FROM tasker.workflow_steps ws
        LEFT JOIN tasker.workflow_step_transitions st
               ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
        WHERE ws.task_uuid = t.task_uuid
    ) c
    WHERE t.created_at >= $1
      AND tt.to_state IN ('complete', 'error')
      AND ($3 IS NULL OR ns.name = $3)
      AND ($4 IS NULL OR nt.name = $4)
      AND ($5 IS NULL OR nt.version = $5)
    ORDER BY duration_seconds DESC, t.task_uuid
    LIMIT $2
$$;
