-- name: task_audit_trail
-- A task's whole history in one chronological list, for the web console's audit trail: the task's transitions, its
-- steps' transitions and the steps' result audit rows (with the transition each records). A task always has its
-- first transition, so no row means no such task. One row more than asked says the list was cut.
SELECT e.*
FROM (
    SELECT 'task_transition' AS kind, tt.created_at AS at, tt.sort_key, NULL::uuid AS step_uuid, NULL::text AS step_name,
           tt.from_state, tt.to_state, tt.metadata, NULL::boolean AS success, NULL::bigint AS execution_time_ms,
           NULL::uuid AS worker_uuid, tt.task_transition_uuid AS event_uuid
    FROM tasker.task_transitions tt
    WHERE tt.task_uuid = %(task_uuid)s
    UNION ALL
    SELECT 'step_transition', st.created_at, st.sort_key, ws.workflow_step_uuid, n.name,
           st.from_state, st.to_state, st.metadata, NULL, NULL, NULL, st.workflow_step_transition_uuid
    FROM tasker.workflow_steps ws
    JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
    JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = ws.workflow_step_uuid
    WHERE ws.task_uuid = %(task_uuid)s
    UNION ALL
    SELECT 'step_result', a.recorded_at, NULL, a.workflow_step_uuid, n.name,
           tr.from_state, tr.to_state, NULL, a.success, a.execution_time_ms, a.worker_uuid,
           a.workflow_step_result_audit_uuid
    FROM tasker.workflow_step_result_audit a
    JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = a.workflow_step_uuid
    JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
    JOIN tasker.workflow_step_transitions tr ON tr.workflow_step_transition_uuid = a.workflow_step_transition_uuid
    WHERE a.task_uuid = %(task_uuid)s
) e
-- Rows of one transaction share `at`: a task's move to an end state comes after the step changes that caused it (a
-- worker's fast path completes the last step and the task together).
ORDER BY e.at,
         (e.kind = 'task_transition'
          AND e.to_state IN ('complete', 'error', 'cancelled', 'resolved_manually', 'blocked_by_failures')),
         e.kind DESC, e.sort_key, e.event_uuid
LIMIT %(limit)s + 1;
