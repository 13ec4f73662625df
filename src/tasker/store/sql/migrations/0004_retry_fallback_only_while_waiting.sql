-- 0004: the failure-time fallback of step_next_retry_at applies only to a step that is waiting for its retry.
-- A step an operator reset for retry (error → pending, attempts and backoff cleared) is ready at once; before this
-- change its old failure made it wait min(2^attempts, 60) s more.
CREATE OR REPLACE FUNCTION tasker.step_next_retry_at(
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
        WHEN $1 = 'waiting_for_retry'
            THEN $5 + make_interval(secs => least(power(2, coalesce($6, 0)), 60))
    END
$$;
