-- name: domain_event_insert_many
-- Durable domain events, inserted in the transaction that stores their steps' results (worker.events), then one
-- signal-only NOTIFY on the events channel (delivered at commit, like the rows) so subscribers wake and read the
-- table. `txid` is the inserting transaction (column default), which readers order by (migration 0013).
WITH inserted AS (
    INSERT INTO tasker_ext.domain_events (event_uuid, name, namespace, task_uuid, step_uuid, step_name, condition,
                                          outcome, delivery_mode, payload)
    SELECT *
    FROM unnest(%(event_uuids)s::uuid[], %(names)s::text[], %(namespaces)s::text[], %(task_uuids)s::uuid[],
                %(step_uuids)s::uuid[], %(step_names)s::text[], %(conditions)s::text[], %(outcomes)s::text[],
                %(delivery_modes)s::text[], %(payloads)s::jsonb[])
    RETURNING event_uuid
)
SELECT (SELECT count(*) FROM inserted) AS inserted, pg_notify(%(channel)s, '') AS notified;

-- name: domain_event_list_many
-- A page of durable events after a cursor (an event id, or none: from the start), oldest first, filtered by
-- namespace, task and name patterns (SQL LIKE, made from globs by model.events). Only events whose transaction
-- is older than every running one are returned (the horizon, migration 0013), so paging never skips an event
-- that commits later. Always one row at least: `cursor_found` is false when `after` names no event (then no
-- events), `held_back` says committed or pending events wait behind the horizon (read again soon); event
-- columns are NULL on the row that carries no event.
WITH horizon AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
),
start AS (
    SELECT COALESCE((SELECT c.txid FROM tasker_ext.domain_events c WHERE c.event_uuid = %(after)s::uuid),
                    CASE WHEN %(after)s::uuid IS NULL THEN '0'::xid8 END) AS txid,
           COALESCE(%(after)s::uuid, '00000000-0000-0000-0000-000000000000'::uuid) AS event_uuid
)
SELECT s.txid IS NOT NULL AS cursor_found,
       EXISTS (SELECT 1 FROM tasker_ext.domain_events p, horizon h WHERE p.txid >= h.xmin) AS held_back,
       e.event_uuid, e.name, e.namespace, e.task_uuid, e.step_uuid, e.step_name, e.condition, e.outcome,
       e.delivery_mode, e.payload, e.created_at
FROM start s
LEFT JOIN LATERAL (
    SELECT e.*
    FROM tasker_ext.domain_events e, horizon h
    WHERE (e.txid, e.event_uuid) > (s.txid, s.event_uuid)
      AND e.txid < h.xmin
      AND (%(namespace)s::text IS NULL OR e.namespace = %(namespace)s::text)
      AND (%(task_uuid)s::uuid IS NULL OR e.task_uuid = %(task_uuid)s::uuid)
      AND (cardinality(%(name_patterns)s::text[]) = 0 OR e.name LIKE ANY (%(name_patterns)s::text[]))
    ORDER BY e.txid, e.event_uuid
    LIMIT %(limit)s
) e ON s.txid IS NOT NULL
ORDER BY e.txid, e.event_uuid;
