-- name: task_transition_initial_many
-- The first transition row (to 'pending', sort_key 1, most_recent) of newly created tasks.
INSERT INTO tasker.task_transitions (task_uuid, to_state, from_state, metadata, sort_key, most_recent, processor_uuid)
SELECT i.task_uuid, 'pending', NULL, i.metadata, 1, true, %(processor_uuid)s
FROM unnest(%(task_uuids)s::uuid[], %(metadata)s::jsonb[]) AS i(task_uuid, metadata);

-- name: step_transition_initial_many
-- The first transition row (to 'pending') of newly created steps.
INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, from_state, metadata, sort_key, most_recent)
SELECT i.step_uuid, 'pending', NULL, %(metadata)s::jsonb, 1, true
FROM unnest(%(step_uuids)s::uuid[]) AS i(step_uuid);

-- name: task_transition_many
-- The task compare-and-swap (function tasker.task_transition_many, migration 0006): winners only.
SELECT * FROM tasker.task_transition_many(%(task_uuids)s::uuid[], %(from_states)s::text[], %(paths)s::jsonb[], %(metadata)s::jsonb[]);

-- name: step_transition_many
-- The step compare-and-swap (function tasker.step_transition_many, migration 0006): winners only.
SELECT * FROM tasker.step_transition_many(
    %(step_uuids)s::uuid[],
    %(from_states)s::text[],
    %(paths)s::jsonb[],
    %(metadata)s::jsonb[],
    %(expected_attempts)s::int[],
    %(in_process)s::bool[],
    %(processed)s::bool[],
    %(stamp_processed_at)s::bool[],
    %(count_attempt)s::bool[],
    %(reset_attempts)s::bool[],
    %(results)s::jsonb[],
    %(backoff_seconds)s::int[],
    %(audit_success)s::bool[],
    %(worker_uuids)s::uuid[],
    %(correlation_ids)s::uuid[],
    %(execution_ms)s::bigint[]
);
