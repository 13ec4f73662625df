-- 0003_readiness_functions: the SQL functions that say which steps are ready, what a task's execution context is,
-- which tasks have work to do, plus the DAG helpers and the step_dag_relationships view.
--
-- Conventions used throughout:
-- * "now" is timezone('utc', now()): every timestamp column is `timestamp without time zone` holding UTC.
-- * A step's or task's current state is its most_recent transition (one per entity, a partial unique index);
--   no transition at all means 'pending'.
-- * Edges point from parent to child: from_step_uuid = parent, to_step_uuid = child.
-- * The table functions are LANGUAGE sql, STABLE, not STRICT and without SET clauses, so the planner inlines them
--   into the calling query (a call for one task becomes an index lookup on workflow_steps by task_uuid). The small
--   scalar helpers reference each argument once, so they are inlined even when an argument is a subquery.
--
-- Indexes used (all from 0001): workflow_steps_task_named_step_unique (task_uuid, ...) for a task's steps;
-- idx_step_transitions_one_most_recent for a step's current state; idx_step_transitions_sort for a step's history
-- (last failure); idx_step_edges_to for a step's parents; idx_task_transitions_one_most_recent and
-- idx_task_transitions_current_state for a task's current state and for tasks by state. No new index is needed.

-- Planner statistics for "current transition in state X" (most_recent AND to_state = X). Every task and step has
-- an old 'pending' row that is no longer most_recent, so the per-column statistics overestimate how many current
-- rows are pending by far, and the planner then scans all current transitions instead of the few active ones
-- (get_next_ready_tasks, dashboards). Multi-column MCV statistics let it see the combination.
CREATE STATISTICS tasker.stx_task_transitions_current_state (mcv) ON to_state, most_recent
    FROM tasker.task_transitions;
CREATE STATISTICS tasker.stx_step_transitions_current_state (mcv) ON to_state, most_recent
    FROM tasker.workflow_step_transitions;

-- ---------------------------------------------------------------------------------------------------------------
-- Scalar helpers: the three rules of readiness, written once and shared by every function below.
-- ---------------------------------------------------------------------------------------------------------------

-- Retry eligibility: the first attempt always runs (even with retryable = false or max_attempts = 0); later ones
-- only while the step is retryable and has attempts left. NULLs take the column defaults (0 attempts, retryable,
-- 3 max attempts).
CREATE FUNCTION tasker.step_retry_eligible(attempts integer, retryable boolean, max_attempts integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN coalesce($1, 0) = 0 THEN true
        ELSE coalesce($2, true) AND $1 < coalesce($3, 3)
    END
$$;

-- When a step may run again, in order of precedence:
-- 1. its current transition is to 'waiting_for_retry' with metadata.retry_at set: that instant (how the engine
--    records a precise backoff: sub-second, template retry policy, a handler's retry_after). retry_at is ISO 8601;
--    with an offset it is converted to UTC, without one it is read in the session time zone (UTC for Tasker);
-- 2. backoff_request_seconds and last_attempted_at both set: last_attempted_at + that many seconds;
-- 3. a failure happened (latest transition to 'error' or 'waiting_for_retry'): failure time + min(2^attempts, 60) s;
-- 4. otherwise NULL: no wait.
-- last_failure_at is referenced once, in the last branch, so a caller may pass a subquery that only runs there.
CREATE FUNCTION tasker.step_next_retry_at(
    current_state text,
    current_metadata jsonb,
    backoff_request_seconds integer,
    last_attempted_at timestamp,
    last_failure_at timestamp,
    attempts integer
)
RETURNS timestamp
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN $1 = 'waiting_for_retry' AND ($2 ->> 'retry_at') IS NOT NULL
            THEN ($2 ->> 'retry_at')::timestamptz AT TIME ZONE 'UTC'
        WHEN $3 IS NOT NULL AND $4 IS NOT NULL
            THEN $4 + make_interval(secs => $3)
        ELSE $5 + make_interval(secs => least(power(2, coalesce($6, 0)), 60))
    END
$$;

-- Ready for execution: in 'pending' or 'waiting_for_retry' (no transition counts as pending), neither processed nor
-- in process, every parent complete or resolved_manually, retry-eligible, and the retry time (if any) has come.
CREATE FUNCTION tasker.step_is_ready(
    current_state text,
    processed boolean,
    in_process boolean,
    dependencies_satisfied boolean,
    retry_eligible boolean,
    next_retry_at timestamp
)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce($1, 'pending') IN ('pending', 'waiting_for_retry')
       AND NOT coalesce($2, false)
       AND NOT coalesce($3, false)
       AND coalesce($4, false)
       AND coalesce($5, false)
       AND coalesce($6 <= timezone('utc', now()), true)
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Step readiness
-- ---------------------------------------------------------------------------------------------------------------

-- One row per step of the given tasks (optionally only the given steps), ordered by task, step.
-- Driven from workflow_steps by task_uuid; per step: its current transition, its parents' current transitions,
-- and its latest failure from its own transition history.
CREATE FUNCTION tasker.get_step_readiness_status_batch(task_uuids uuid[], step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
    workflow_step_uuid uuid,
    task_uuid uuid,
    named_step_uuid uuid,
    name text,
    current_state text,
    dependencies_satisfied boolean,
    retry_eligible boolean,
    ready_for_execution boolean,
    last_failure_at timestamp,
    next_retry_at timestamp,
    total_parents integer,
    completed_parents integer,
    attempts integer,
    max_attempts integer,
    backoff_request_seconds integer,
    last_attempted_at timestamp,
    retryable boolean
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT s.workflow_step_uuid,
           s.task_uuid,
           s.named_step_uuid,
           s.name,
           s.current_state,
           s.dependencies_satisfied,
           s.retry_eligible,
           tasker.step_is_ready(s.current_state, s.processed, s.in_process, s.dependencies_satisfied,
                                s.retry_eligible, s.next_retry_at),
           s.last_failure_at,
           s.next_retry_at,
           s.total_parents,
           s.completed_parents,
           s.attempts,
           s.max_attempts,
           s.backoff_request_seconds,
           s.last_attempted_at,
           s.retryable
    FROM (
        SELECT ws.workflow_step_uuid,
               ws.task_uuid,
               ws.named_step_uuid,
               ns.name::text AS name,
               coalesce(cur.to_state, 'pending')::text AS current_state,
               ws.processed,
               ws.in_process,
               dep.total_parents = dep.completed_parents AS dependencies_satisfied,
               tasker.step_retry_eligible(ws.attempts, ws.retryable, ws.max_attempts) AS retry_eligible,
               fail.last_failure_at,
               tasker.step_next_retry_at(cur.to_state, cur.metadata, ws.backoff_request_seconds,
                                         ws.last_attempted_at, fail.last_failure_at, ws.attempts) AS next_retry_at,
               dep.total_parents,
               dep.completed_parents,
               coalesce(ws.attempts, 0) AS attempts,
               coalesce(ws.max_attempts, 3) AS max_attempts,
               ws.backoff_request_seconds,
               ws.last_attempted_at,
               ws.retryable
        FROM tasker.workflow_steps ws
        JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
        LEFT JOIN tasker.workflow_step_transitions cur
               ON cur.workflow_step_uuid = ws.workflow_step_uuid AND cur.most_recent
        -- parents: counted once each even if two named edges join the same pair of steps
        CROSS JOIN LATERAL (
            SELECT count(DISTINCT e.from_step_uuid)::integer AS total_parents,
                   (count(DISTINCT e.from_step_uuid)
                        FILTER (WHERE pt.to_state IN ('complete', 'resolved_manually')))::integer AS completed_parents
            FROM tasker.workflow_step_edges e
            LEFT JOIN tasker.workflow_step_transitions pt
                   ON pt.workflow_step_uuid = e.from_step_uuid AND pt.most_recent
            WHERE e.to_step_uuid = ws.workflow_step_uuid
        ) dep
        CROSS JOIN LATERAL (
            SELECT max(f.created_at) AS last_failure_at
            FROM tasker.workflow_step_transitions f
            WHERE f.workflow_step_uuid = ws.workflow_step_uuid
              AND f.to_state IN ('error', 'waiting_for_retry')
        ) fail
        WHERE ws.task_uuid = ANY ($1)
          AND ($2 IS NULL OR ws.workflow_step_uuid = ANY ($2))
    ) s
    ORDER BY s.task_uuid, s.workflow_step_uuid
$$;

CREATE FUNCTION tasker.get_step_readiness_status(task_uuid uuid, step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
    workflow_step_uuid uuid,
    task_uuid uuid,
    named_step_uuid uuid,
    name text,
    current_state text,
    dependencies_satisfied boolean,
    retry_eligible boolean,
    ready_for_execution boolean,
    last_failure_at timestamp,
    next_retry_at timestamp,
    total_parents integer,
    completed_parents integer,
    attempts integer,
    max_attempts integer,
    backoff_request_seconds integer,
    last_attempted_at timestamp,
    retryable boolean
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT * FROM tasker.get_step_readiness_status_batch(ARRAY[$1], $2)
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Task execution context
-- ---------------------------------------------------------------------------------------------------------------

-- One row per existing task of the list: step counts by state and what the orchestrator should do next.
--
-- Counts: completed = complete or resolved_manually; failed = error (permanent by construction: retryable failures
-- go to waiting_for_retry); enqueued = enqueued + enqueued_for_orchestration + enqueued_as_error_for_orchestration;
-- waiting_for_retry = in waiting_for_retry and its retry time has not come yet (once it has, the step is ready);
-- cancelled steps are done but not complete, so a task with a cancelled step is never all_complete.
--
-- execution_status, first match wins:
--   1. failed_steps > 0                              -> blocked_by_failures      (handle_failures)
--   2. ready_steps > 0                               -> has_ready_steps          (execute_ready_steps)
--   3. any step in_progress or enqueued*             -> processing               (wait_for_completion)
--   4. total_steps > 0 and completed = total         -> all_complete             (finalize_task)
--   5. waiting_for_retry_steps > 0                   -> waiting_for_retry        (wait_for_retry)
--   6. otherwise (incl. no steps, or cancelled ones) -> waiting_for_dependencies (wait_for_dependencies)
-- health_status: blocked when blocked_by_failures, recovering while some step waits for a retry, else healthy.
CREATE FUNCTION tasker.get_task_execution_contexts_batch(task_uuids uuid[])
RETURNS TABLE (
    task_uuid uuid,
    named_task_uuid uuid,
    status text,
    total_steps bigint,
    pending_steps bigint,
    in_progress_steps bigint,
    completed_steps bigint,
    failed_steps bigint,
    ready_steps bigint,
    enqueued_steps bigint,
    waiting_for_retry_steps bigint,
    cancelled_steps bigint,
    execution_status text,
    recommended_action text,
    completion_percentage numeric,
    health_status text
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT t.task_uuid,
           t.named_task_uuid,
           coalesce(tt.to_state, 'pending')::text,
           c.total_steps,
           c.pending_steps,
           c.in_progress_steps,
           c.completed_steps,
           c.failed_steps,
           c.ready_steps,
           c.enqueued_steps,
           c.waiting_for_retry_steps,
           c.cancelled_steps,
           x.execution_status,
           CASE x.execution_status
               WHEN 'blocked_by_failures' THEN 'handle_failures'
               WHEN 'has_ready_steps' THEN 'execute_ready_steps'
               WHEN 'processing' THEN 'wait_for_completion'
               WHEN 'all_complete' THEN 'finalize_task'
               WHEN 'waiting_for_retry' THEN 'wait_for_retry'
               ELSE 'wait_for_dependencies'
           END,
           CASE WHEN c.total_steps = 0 THEN 0.00
                ELSE round(c.completed_steps * 100.0 / c.total_steps, 2)
           END,
           CASE WHEN x.execution_status = 'blocked_by_failures' THEN 'blocked'
                WHEN c.waiting_for_retry_steps > 0 THEN 'recovering'
                ELSE 'healthy'
           END
    FROM tasker.tasks t
    LEFT JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
    CROSS JOIN LATERAL (
        SELECT count(*) AS total_steps,
               count(*) FILTER (WHERE r.current_state = 'pending') AS pending_steps,
               count(*) FILTER (WHERE r.current_state = 'in_progress') AS in_progress_steps,
               count(*) FILTER (WHERE r.current_state IN ('complete', 'resolved_manually')) AS completed_steps,
               count(*) FILTER (WHERE r.current_state = 'error') AS failed_steps,
               count(*) FILTER (WHERE r.ready_for_execution) AS ready_steps,
               count(*) FILTER (WHERE r.current_state IN (
                   'enqueued', 'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration'
               )) AS enqueued_steps,
               count(*) FILTER (WHERE r.current_state = 'waiting_for_retry' AND NOT r.ready_for_execution
                                  AND r.next_retry_at > timezone('utc', now())) AS waiting_for_retry_steps,
               count(*) FILTER (WHERE r.current_state = 'cancelled') AS cancelled_steps
        FROM tasker.get_step_readiness_status_batch(ARRAY[t.task_uuid]) r
    ) c
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN c.failed_steps > 0 THEN 'blocked_by_failures'
            WHEN c.ready_steps > 0 THEN 'has_ready_steps'
            WHEN c.in_progress_steps + c.enqueued_steps > 0 THEN 'processing'
            WHEN c.total_steps > 0 AND c.completed_steps = c.total_steps THEN 'all_complete'
            WHEN c.waiting_for_retry_steps > 0 THEN 'waiting_for_retry'
            ELSE 'waiting_for_dependencies'
        END AS execution_status
    ) x
    WHERE t.task_uuid = ANY ($1)
    ORDER BY t.task_uuid
$$;

CREATE FUNCTION tasker.get_task_execution_context(task_uuid uuid)
RETURNS TABLE (
    task_uuid uuid,
    named_task_uuid uuid,
    status text,
    total_steps bigint,
    pending_steps bigint,
    in_progress_steps bigint,
    completed_steps bigint,
    failed_steps bigint,
    ready_steps bigint,
    enqueued_steps bigint,
    waiting_for_retry_steps bigint,
    cancelled_steps bigint,
    execution_status text,
    recommended_action text,
    completion_percentage numeric,
    health_status text
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT * FROM tasker.get_task_execution_contexts_batch(ARRAY[$1])
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- DAG helpers
-- ---------------------------------------------------------------------------------------------------------------

-- Every ancestor of a step exactly once, with its minimum distance (1 = direct parent), nearest first.
-- The walk keeps (step, distance) pairs unique and stops at depth 50, so a malformed graph cannot loop forever.
CREATE FUNCTION tasker.get_step_transitive_dependencies(target_step_uuid uuid)
RETURNS TABLE (
    workflow_step_uuid uuid,
    task_uuid uuid,
    named_step_uuid uuid,
    step_name text,
    results jsonb,
    processed boolean,
    distance integer
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH RECURSIVE ancestors (step_uuid, distance) AS (
        SELECT e.from_step_uuid, 1
        FROM tasker.workflow_step_edges e
        WHERE e.to_step_uuid = $1
        UNION
        SELECT e.from_step_uuid, a.distance + 1
        FROM ancestors a
        JOIN tasker.workflow_step_edges e ON e.to_step_uuid = a.step_uuid
        WHERE a.distance < 50
    ),
    nearest AS (
        SELECT a.step_uuid, min(a.distance) AS distance
        FROM ancestors a
        GROUP BY a.step_uuid
    )
    SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid, ns.name::text, ws.results, ws.processed,
           n.distance
    FROM nearest n
    JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = n.step_uuid
    JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
    ORDER BY n.distance, ws.workflow_step_uuid
$$;

-- Each step's level: the longest path from any root (a step without parents is level 0), ordered by level, step.
CREATE FUNCTION tasker.calculate_dependency_levels(task_uuid uuid)
RETURNS TABLE (workflow_step_uuid uuid, dependency_level integer)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH RECURSIVE walk (step_uuid, level) AS (
        SELECT ws.workflow_step_uuid, 0
        FROM tasker.workflow_steps ws
        WHERE ws.task_uuid = $1
          AND NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = ws.workflow_step_uuid)
        UNION
        SELECT e.to_step_uuid, w.level + 1
        FROM walk w
        JOIN tasker.workflow_step_edges e ON e.from_step_uuid = w.step_uuid
        WHERE w.level < 50
    )
    SELECT w.step_uuid, max(w.level)::integer AS dependency_level
    FROM walk w
    GROUP BY w.step_uuid
    ORDER BY dependency_level, w.step_uuid
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Tasks with work to do
-- ---------------------------------------------------------------------------------------------------------------

-- Up to p_limit tasks for the orchestrator to pick up, best first.
--
-- Candidates: tasks whose current state is pending, waiting_for_dependencies, waiting_for_retry,
-- evaluating_results or steps_in_process (steps can become ready again, e.g. after a backoff, while the task sits
-- in steps_in_process). A pending task always qualifies; any other one only when at least one of its steps is ready.
-- There is no time window: a task with ready steps is returned however long it has waited.
--
-- computed_priority = priority + minutes since the task entered its current state (one point per minute waiting,
-- rounded to 3 decimals). Priority orders fresh work; a task that has waited long enough overtakes any priority
-- (priority is -100..100, so within 200 minutes), so nothing starves. Ties go to the older task.
--
-- Cost: driven by the current transitions of tasks in those five states (idx_task_transitions_current_state, not
-- a scan of all tasks), then per candidate its unprocessed, not-in-process steps: linear in the tasks in flight,
-- independent of finished and blocked ones, so an idle system does almost no work. A task without any transition is not found here (task creation always writes the initial 'pending' row).
-- No row lock is taken: exclusive pick-up comes from the compare-and-set task transition that follows.
CREATE FUNCTION tasker.get_next_ready_tasks(p_limit integer DEFAULT 5)
RETURNS TABLE (
    task_uuid uuid,
    task_name text,
    priority integer,
    namespace_name text,
    ready_steps_count bigint,
    computed_priority numeric,
    current_state text
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT t.task_uuid,
           nt.name::text,
           t.priority,
           ns.name::text,
           r.ready_steps_count,
           round(t.priority
                 + extract(epoch FROM timezone('utc', now()) - c.created_at) / 60.0, 3) AS computed_priority,
           c.to_state::text
    FROM tasker.task_transitions c
    -- per candidate task, its ready steps: a lateral aggregate, so each task costs a few index probes
    CROSS JOIN LATERAL (
        SELECT count(*) AS ready_steps_count
        FROM tasker.workflow_steps ws
        LEFT JOIN tasker.workflow_step_transitions cur
               ON cur.workflow_step_uuid = ws.workflow_step_uuid AND cur.most_recent
        WHERE ws.task_uuid = c.task_uuid
          AND NOT ws.processed
          AND NOT ws.in_process
          AND tasker.step_is_ready(
                cur.to_state, ws.processed, ws.in_process,
                NOT EXISTS (
                    SELECT 1
                    FROM tasker.workflow_step_edges e
                    LEFT JOIN tasker.workflow_step_transitions pt
                           ON pt.workflow_step_uuid = e.from_step_uuid AND pt.most_recent
                    WHERE e.to_step_uuid = ws.workflow_step_uuid
                      AND coalesce(pt.to_state, 'pending') NOT IN ('complete', 'resolved_manually')
                ),
                tasker.step_retry_eligible(ws.attempts, ws.retryable, ws.max_attempts),
                tasker.step_next_retry_at(
                    cur.to_state, cur.metadata, ws.backoff_request_seconds, ws.last_attempted_at,
                    (SELECT max(f.created_at)
                     FROM tasker.workflow_step_transitions f
                     WHERE f.workflow_step_uuid = ws.workflow_step_uuid
                       AND f.to_state IN ('error', 'waiting_for_retry')),
                    ws.attempts))
    ) r
    JOIN tasker.tasks t ON t.task_uuid = c.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE c.most_recent
      AND c.to_state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry',
                         'evaluating_results', 'steps_in_process')
      AND (c.to_state = 'pending' OR r.ready_steps_count > 0)
    ORDER BY computed_priority DESC, t.created_at, t.task_uuid
    LIMIT $1
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- View: each step's place in its DAG
-- ---------------------------------------------------------------------------------------------------------------

-- parent/child uuids as sorted jsonb arrays; min_depth_from_root = fewest edges from any root (0 for a root),
-- computed per row by walking up (depth cap 50), so filtering the view by task or step stays cheap.
CREATE VIEW tasker.step_dag_relationships AS
SELECT ws.workflow_step_uuid,
       ws.task_uuid,
       ws.named_step_uuid,
       coalesce(p.uuids, '[]'::jsonb) AS parent_step_uuids,
       coalesce(ch.uuids, '[]'::jsonb) AS child_step_uuids,
       coalesce(p.n, 0) AS parent_count,
       coalesce(ch.n, 0) AS child_count,
       coalesce(p.n, 0) = 0 AS is_root_step,
       coalesce(ch.n, 0) = 0 AS is_leaf_step,
       (
           WITH RECURSIVE up (step_uuid, depth) AS (
               SELECT ws.workflow_step_uuid, 0
               UNION
               SELECT e.from_step_uuid, up.depth + 1
               FROM up
               JOIN tasker.workflow_step_edges e ON e.to_step_uuid = up.step_uuid
               WHERE up.depth < 50
           )
           SELECT min(up.depth)
           FROM up
           WHERE NOT EXISTS (SELECT 1 FROM tasker.workflow_step_edges r WHERE r.to_step_uuid = up.step_uuid)
       ) AS min_depth_from_root
FROM tasker.workflow_steps ws
LEFT JOIN LATERAL (
    SELECT jsonb_agg(DISTINCT e.from_step_uuid ORDER BY e.from_step_uuid) AS uuids,
           count(DISTINCT e.from_step_uuid)::integer AS n
    FROM tasker.workflow_step_edges e
    WHERE e.to_step_uuid = ws.workflow_step_uuid
) p ON true
LEFT JOIN LATERAL (
    SELECT jsonb_agg(DISTINCT e.to_step_uuid ORDER BY e.to_step_uuid) AS uuids,
           count(DISTINCT e.to_step_uuid)::integer AS n
    FROM tasker.workflow_step_edges e
    WHERE e.from_step_uuid = ws.workflow_step_uuid
) ch ON true;

COMMENT ON VIEW tasker.step_dag_relationships IS
    'Per workflow step: parents, children, root/leaf flags and the minimum depth from a root of its DAG';
