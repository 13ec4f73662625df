-- 0013: durable domain events (templates' `publishes_events`), written in the transaction that stores the step's
-- result, so an event exists exactly when its result was stored.
--
-- Readers page in commit order, not in id order. Ids (UUID v7) are made before the inserting transaction
-- commits, so a transaction that commits late can hold a smaller id than one already read: a reader paging by id
-- alone would skip it. Each row therefore records its transaction id (`txid`), and readers only return rows
-- whose transaction is older than every transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`):
-- such rows are final, and any row that becomes visible later has a larger txid. Order is (txid, event_uuid).
-- Not in schema `tasker` (that schema is tasker-core's, exactly): extensions live in `tasker_ext`.

CREATE SCHEMA IF NOT EXISTS tasker_ext;

CREATE TABLE tasker_ext.domain_events (
    event_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    name varchar(255) NOT NULL,
    namespace varchar(255) NOT NULL,
    task_uuid uuid NOT NULL,
    step_uuid uuid NOT NULL,
    step_name varchar(128) NOT NULL,
    condition varchar(32) NOT NULL
        CHECK (condition IN ('success', 'failure', 'retryable_failure', 'permanent_failure', 'always')),
    outcome varchar(32) NOT NULL CHECK (outcome IN ('success', 'retryable_failure', 'permanent_failure')),
    delivery_mode varchar(16) NOT NULL CHECK (delivery_mode IN ('durable', 'broadcast')),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE tasker_ext.domain_events IS
    'Durable domain events declared by template steps (publishes_events), inserted in the transaction that stores '
    'the step result; read in (txid, event_uuid) order behind the snapshot xmin (see migration 0013)';
COMMENT ON COLUMN tasker_ext.domain_events.txid IS
    'the inserting transaction: readers return a row only once every older transaction has ended';
COMMENT ON COLUMN tasker_ext.domain_events.payload IS
    'the event envelope: event_id, event_name, event_version, payload {payload, execution_result}, metadata';

-- domain_event_list_many: every read walks (txid, event_uuid) from its cursor, filters (namespace, task, name)
-- apply along that walk; the horizon check (txid >= xmin) reads the top of the same index
CREATE INDEX domain_events_order_idx ON tasker_ext.domain_events (txid, event_uuid);
