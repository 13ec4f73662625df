-- 0017: what a step's handler sees, as one view, so that every claim statement (a claim of enqueued steps, the
-- read-and-claim of a queue, the fast path's continuation) reads the same context the same way. The planner
-- inlines the view: selecting one step computes its dependency results only.
CREATE VIEW tasker_ext.step_handler_context AS
SELECT s.workflow_step_uuid, s.task_uuid, n.name,
       COALESCE(s.inputs ->> '__template_step_name', n.name) AS template_step_name,
       s.inputs, s.checkpoint, COALESCE(s.max_attempts, 3) AS max_attempts, s.retryable, t.context,
       t.correlation_id, t.named_task_uuid, nt.name AS task_name, nt.version AS task_version,
       ns.name AS namespace_name,
       COALESCE((SELECT jsonb_object_agg(d.step_name, d.results)
                 FROM tasker.get_step_transitive_dependencies(s.workflow_step_uuid) d
                 WHERE d.results IS NOT NULL), jsonb_build_object()) AS dependency_results
FROM tasker.workflow_steps s
JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
JOIN tasker.tasks t ON t.task_uuid = s.task_uuid
JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid;
