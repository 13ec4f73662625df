-- name: step_readiness
-- Readiness of every step of one task (tasker.get_step_readiness_status, migration 0003).
SELECT * FROM tasker.get_step_readiness_status(%(task_uuid)s);

-- name: step_outcome_many
-- What result processing needs about steps whose results arrived: state, stored result, attempt counters, the
-- template step name (batch workers name theirs in inputs) and the task's template id.
SELECT s.workflow_step_uuid, s.task_uuid, n.name, COALESCE(s.inputs ->> '__template_step_name', n.name)
           AS template_step_name,
       COALESCE(st.to_state, 'pending') AS state, s.results, COALESCE(s.attempts, 0) AS attempts,
       COALESCE(s.max_attempts, 3) AS max_attempts, s.retryable, t.named_task_uuid, t.correlation_id
FROM unnest(%(step_uuids)s::uuid[]) AS i(step_uuid)
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent;

-- name: step_claim_view_many
-- What a worker needs to claim messages: each step's current state and attempt count.
SELECT s.workflow_step_uuid, COALESCE(st.to_state, 'pending') AS state, COALESCE(s.attempts, 0) AS attempts
FROM unnest(%(step_uuids)s::uuid[]) AS i(step_uuid)
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
LEFT JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid AND st.most_recent;

-- name: step_context_many
-- Everything a handler sees, for claimed steps, in one round trip: the task's context and names, the step's
-- inputs, checkpoint and counters, and the stored results of all its ancestors (name → results).
SELECT s.workflow_step_uuid, s.task_uuid, n.name,
       COALESCE(s.inputs ->> '__template_step_name', n.name) AS template_step_name,
       s.inputs, s.checkpoint, COALESCE(s.attempts, 0) AS attempts, COALESCE(s.max_attempts, 3) AS max_attempts,
       s.retryable, t.context, t.correlation_id, t.named_task_uuid, nt.name AS task_name, nt.version AS task_version,
       ns.name AS namespace_name,
       COALESCE((SELECT jsonb_object_agg(d.step_name, d.results)
                 FROM tasker.get_step_transitive_dependencies(s.workflow_step_uuid) d
                 WHERE d.results IS NOT NULL), '{}'::jsonb) AS dependency_results
FROM unnest(%(step_uuids)s::uuid[]) AS i(step_uuid)
JOIN tasker.workflow_steps s ON s.workflow_step_uuid = i.step_uuid
JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid;

-- name: template_configuration_get
-- The stored template of a task template id (workers and orchestrators cache it).
SELECT configuration FROM tasker.named_tasks WHERE named_task_uuid = %(named_task_uuid)s;

-- name: task_ready_many
-- Tasks with steps ready to run (tasker.get_next_ready_tasks, migration 0003): backoffs that passed, tasks that
-- were never started.
SELECT task_uuid FROM tasker.get_next_ready_tasks(%(limit)s);
