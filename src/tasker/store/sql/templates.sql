-- name: template_find_for_update
-- The registered template under (namespace, name, version), locked so that concurrent registrations of the
-- same key decide "unchanged / conflict / update" one after the other.
SELECT nt.named_task_uuid, nt.configuration
FROM tasker.named_tasks nt
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
WHERE ns.name = %(namespace)s AND nt.name = %(name)s AND nt.version = %(version)s
FOR UPDATE OF nt;

-- name: template_insert
-- Find-or-create the namespace and create the named task in one round trip. Returns no row when a concurrent
-- transaction committed the namespace or the named task after this statement's snapshot; the caller retries.
WITH new_namespace AS (
    INSERT INTO tasker.task_namespaces (name)
    VALUES (%(namespace)s)
    ON CONFLICT (name) DO NOTHING
    RETURNING task_namespace_uuid
), namespace AS (
    SELECT task_namespace_uuid FROM new_namespace
    UNION ALL
    SELECT task_namespace_uuid FROM tasker.task_namespaces WHERE name = %(namespace)s
)
INSERT INTO tasker.named_tasks (task_namespace_uuid, name, description, version, configuration)
SELECT task_namespace_uuid, %(name)s, %(description)s, %(version)s, %(configuration)s
FROM namespace
LIMIT 1
ON CONFLICT (task_namespace_uuid, name, version) DO NOTHING
RETURNING named_task_uuid;

-- name: template_update
-- Forced re-registration of a changed template under the same version: new configuration in place, so tasks
-- already pointing at this named task keep their reference.
UPDATE tasker.named_tasks
SET configuration = %(configuration)s,
    description = %(description)s,
    updated_at = timezone('utc', now())
WHERE named_task_uuid = %(named_task_uuid)s;

-- name: template_steps_sync
-- Make the template's step links exactly its steps: find-or-create every named step (names are global, shared
-- by all templates), upsert the links with the retry defaults, and drop links to steps the template no longer
-- has. Returns how many links exist for the given steps; fewer than given means a concurrent transaction
-- created a named step after our snapshot, and the caller runs this again.
WITH given AS (
    SELECT *
    FROM unnest(%(names)s::text[], %(descriptions)s::text[], %(retryable)s::boolean[], %(max_attempts)s::int[])
         AS g(name, description, retryable, max_attempts)
), created AS (
    INSERT INTO tasker.named_steps (name, description)
    SELECT name, description FROM given
    ON CONFLICT (name) DO NOTHING
    RETURNING named_step_uuid, name
), steps AS (
    SELECT named_step_uuid, name FROM created
    UNION ALL
    SELECT s.named_step_uuid, s.name FROM tasker.named_steps s JOIN given g ON g.name = s.name
), pruned AS (
    DELETE FROM tasker.named_tasks_named_steps l
    WHERE l.named_task_uuid = %(named_task_uuid)s
      AND l.named_step_uuid NOT IN (SELECT named_step_uuid FROM steps)
), linked AS (
    INSERT INTO tasker.named_tasks_named_steps (named_task_uuid, named_step_uuid, default_retryable,
                                                default_max_attempts)
    SELECT %(named_task_uuid)s, s.named_step_uuid, g.retryable, g.max_attempts
    FROM steps s JOIN given g ON g.name = s.name
    ON CONFLICT (named_task_uuid, named_step_uuid) DO UPDATE
    SET default_retryable = EXCLUDED.default_retryable,
        default_max_attempts = EXCLUDED.default_max_attempts,
        updated_at = timezone('utc', now())
    RETURNING 1
)
SELECT count(*)::int AS linked FROM linked;

-- name: template_get
-- One template by the three strings a task request names it with, and a digest of its configuration: a parsed
-- copy kept under it is never stale.
SELECT nt.named_task_uuid, md5(nt.configuration::text) AS digest, nt.configuration
FROM tasker.named_tasks nt
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
WHERE ns.name = %(namespace)s AND nt.name = %(name)s AND nt.version = %(version)s;

-- name: template_get_by_uuid
-- One template by its named task, for code that holds a task's named_task_uuid.
SELECT nt.named_task_uuid, nt.configuration
FROM tasker.named_tasks nt
WHERE nt.named_task_uuid = %(named_task_uuid)s;

-- name: template_list
-- Registered templates for listings (API, CLI), optionally one namespace; the step count comes from the stored
-- template so it is right even for templates registered by other tools.
SELECT ns.name AS namespace,
       nt.name,
       nt.version,
       nt.description,
       CASE WHEN jsonb_typeof(nt.configuration -> 'steps') = 'array'
            THEN jsonb_array_length(nt.configuration -> 'steps') ELSE 0 END AS step_count,
       nt.named_task_uuid
FROM tasker.named_tasks nt
JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
WHERE %(namespace)s::text IS NULL OR ns.name = %(namespace)s::text
ORDER BY ns.name, nt.name, nt.version;
