-- name: schedule_insert
-- Add a schedule and tell every orchestrator's scheduler (the NOTIFY is delivered at commit, with the row).
WITH added AS (
    INSERT INTO tasker_ext.schedules (name, cron, timezone, namespace, task_name, version, context, initiator,
                                      source_system, reason, tags, priority, enabled, next_run_at)
    VALUES (%(name)s, %(cron)s, %(timezone)s, %(namespace)s, %(task_name)s, %(version)s, %(context)s, %(initiator)s,
            %(source_system)s, %(reason)s, %(tags)s, %(priority)s, %(enabled)s, %(next_run_at)s)
    RETURNING *
)
SELECT added.*, pg_notify(%(channel)s, added.name) AS notified FROM added;

-- name: schedule_list
-- Every schedule, by name, with how many ticks fired.
SELECT s.*, (SELECT count(*) FROM tasker_ext.schedule_runs r WHERE r.schedule_uuid = s.schedule_uuid) AS runs
FROM tasker_ext.schedules s
ORDER BY s.name;

-- name: schedule_get
SELECT s.* FROM tasker_ext.schedules s WHERE s.name = %(name)s;

-- name: schedule_delete
-- Remove a schedule (its runs go with it, ON DELETE CASCADE; the tasks it created stay).
WITH removed AS (DELETE FROM tasker_ext.schedules WHERE name = %(name)s RETURNING name)
SELECT removed.name, pg_notify(%(channel)s, removed.name) AS notified FROM removed;

-- name: schedule_set_enabled
-- Enable or disable a schedule. Enabling sets the next tick from now: ticks that passed while disabled do not fire.
WITH changed AS (
    UPDATE tasker_ext.schedules
    SET enabled = %(enabled)s,
        next_run_at = coalesce(%(next_run_at)s, next_run_at),
        updated_at = now()
    WHERE name = %(name)s
    RETURNING *
)
SELECT changed.*, pg_notify(%(channel)s, changed.name) AS notified FROM changed;

-- name: schedule_claim_due
-- The most overdue enabled schedule that no other orchestrator is firing, locked until the caller's transaction
-- ends. Another scheduler's concurrent claim skips this row; one that read it before the lock re-checks the row
-- after our commit (READ COMMITTED), finds next_run_at advanced, and skips it too: one creation per tick.
SELECT s.*, now() AS db_now
FROM tasker_ext.schedules s
WHERE s.enabled AND s.next_run_at <= now()
ORDER BY s.next_run_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: schedule_fired
-- Record a fired tick and advance the schedule, in one statement of the transaction that created the task.
WITH run AS (
    INSERT INTO tasker_ext.schedule_runs (schedule_uuid, scheduled_for, missed_since, task_uuid, error,
                                          processor_uuid)
    VALUES (%(schedule_uuid)s, %(scheduled_for)s, %(missed_since)s, %(task_uuid)s, %(error)s, %(processor_uuid)s)
    RETURNING schedule_run_uuid
)
UPDATE tasker_ext.schedules s
SET next_run_at = %(next_run_at)s,
    last_run_at = %(scheduled_for)s,
    last_task_uuid = coalesce(%(task_uuid)s, s.last_task_uuid),
    updated_at = now()
FROM run
WHERE s.schedule_uuid = %(schedule_uuid)s
RETURNING run.schedule_run_uuid;

-- name: schedule_next_due
-- Seconds until the next enabled schedule is due (negative: overdue), by the database's clock, so schedulers on
-- hosts whose clocks disagree still wake at the same moment; NULL when nothing is scheduled.
SELECT extract(epoch FROM min(next_run_at) - now())::float8 AS seconds
FROM tasker_ext.schedules
WHERE enabled;

-- name: schedule_runs_recent
-- The newest runs of a schedule.
SELECT r.scheduled_for, r.missed_since, r.task_uuid, r.error, r.created_at
FROM tasker_ext.schedule_runs r
JOIN tasker_ext.schedules s USING (schedule_uuid)
WHERE s.name = %(name)s
ORDER BY r.scheduled_for DESC
LIMIT %(limit)s;
