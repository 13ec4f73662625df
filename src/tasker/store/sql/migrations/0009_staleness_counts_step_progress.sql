-- 0009: staleness measures time without progress, not time since the task's last transition.
--
-- A task in steps_in_process writes no task transition while its steps complete one after another, so a workflow
-- running longer than the threshold (30 minutes by default) was swept to error and the DLQ while progressing.
-- time_in_state_minutes (and so health_status and the sweep) now count from the latest of the task's current
-- transition and its steps' latest transitions. state_entered_at keeps its meaning: when the task entered its
-- state. The signature and columns are unchanged, so the views built on the function stay as they are.
CREATE OR REPLACE FUNCTION tasker.get_task_staleness(
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
               extract(epoch FROM timezone('utc', now()) - greatest(tt.created_at, p.last_step_change))::float8 / 60.0
                   AS in_state_minutes,
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
        -- a step's latest transition is its most_recent one: one index lookup per step of the task
        CROSS JOIN LATERAL (
            SELECT max(st.created_at) AS last_step_change
            FROM tasker.workflow_steps ws
            JOIN tasker.workflow_step_transitions st
              ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
            WHERE ws.task_uuid = t.task_uuid
        ) p
        WHERE tt.most_recent
          AND tt.to_state IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process')
    ) s
$$;
