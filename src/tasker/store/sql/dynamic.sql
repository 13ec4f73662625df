-- name: dynamic_steps_create
-- Add steps, their edges and their first ('pending') transitions to an existing task, in one statement and
-- idempotently: a step whose named step already has a row in the task is skipped (UNIQUE(task_uuid,
-- named_step_uuid)), an edge that exists is skipped (UNIQUE(from, to, name)). Named steps are found or created by
-- name (batch workers are named `{worker_template}_{batch_id}`). Edges are given by step names and resolved among
-- the task's steps, old and new; when the parent does not exist the fallback parent is used, and with no fallback
-- the edge is left out. Runs under the task's row lock. `unresolved` counts step names that found no named step:
-- another transaction created the name at the same moment, and this statement's snapshot cannot see it yet, so the
-- caller runs the statement again.
WITH input AS (
    SELECT *
    FROM unnest(%(step_uuids)s::uuid[], %(step_names)s::text[], %(retryable)s::bool[], %(max_attempts)s::int[],
                %(inputs)s::jsonb[])
         AS i(step_uuid, name, retryable, max_attempts, inputs)
),
added_names AS (
    INSERT INTO tasker.named_steps (name)
    SELECT i.name FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM tasker.named_steps n WHERE n.name = i.name)
    ON CONFLICT (name) DO NOTHING
    RETURNING named_step_uuid, name
),
names AS (
    SELECT n.named_step_uuid, n.name::text AS name FROM tasker.named_steps n JOIN input i ON i.name = n.name
    UNION ALL
    SELECT named_step_uuid, name::text FROM added_names
),
new_steps AS (
    INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, retryable, max_attempts,
                                       inputs)
    SELECT i.step_uuid, %(task_uuid)s, nm.named_step_uuid, i.retryable, i.max_attempts, i.inputs
    FROM input i
    JOIN names nm ON nm.name = i.name
    ON CONFLICT ON CONSTRAINT workflow_steps_task_named_step_unique DO NOTHING
    RETURNING workflow_step_uuid, named_step_uuid
),
first_transitions AS (
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, from_state, metadata, sort_key,
                                                  most_recent)
    SELECT workflow_step_uuid, 'pending', NULL, %(metadata)s, 1, true FROM new_steps
    RETURNING 1
),
known AS (
    SELECT n.name::text AS name, s.workflow_step_uuid
    FROM tasker.workflow_steps s
    JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
    WHERE s.task_uuid = %(task_uuid)s
    UNION ALL
    SELECT nm.name, ns.workflow_step_uuid
    FROM new_steps ns
    JOIN names nm ON nm.named_step_uuid = ns.named_step_uuid
),
edges AS (
    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
    SELECT DISTINCT COALESCE(f.workflow_step_uuid, fb.workflow_step_uuid), t.workflow_step_uuid, e.name
    FROM unnest(%(edge_from)s::text[], %(edge_to)s::text[], %(edge_names)s::text[], %(edge_fallbacks)s::text[])
         AS e(from_name, to_name, name, fallback_name)
    JOIN known t ON t.name = e.to_name
    LEFT JOIN known f ON f.name = e.from_name
    LEFT JOIN known fb ON fb.name = e.fallback_name
    WHERE COALESCE(f.workflow_step_uuid, fb.workflow_step_uuid) IS NOT NULL
      AND COALESCE(f.workflow_step_uuid, fb.workflow_step_uuid) <> t.workflow_step_uuid
    ON CONFLICT (from_step_uuid, to_step_uuid, name) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM new_steps) AS steps_created,
       (SELECT count(*) FROM edges) AS edges_created,
       (SELECT count(*) FROM first_transitions) AS transitions_created,
       (SELECT count(*) FROM input i WHERE NOT EXISTS (SELECT 1 FROM names n WHERE n.name = i.name)) AS unresolved;

-- name: step_isolated_many
-- Of the given (failed) steps, the batch workers whose failure strategy is 'isolate': their failure waits for an
-- operator without stopping the task's other steps.
SELECT s.workflow_step_uuid
FROM tasker.workflow_steps s
WHERE s.workflow_step_uuid = ANY(%(step_uuids)s::uuid[])
  AND s.inputs -> 'batch_metadata' ->> 'failure_strategy' = 'isolate';
