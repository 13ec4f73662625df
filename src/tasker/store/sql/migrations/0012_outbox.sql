-- 0012: the transactional outbox of the RabbitMQ transport.
--
-- With RabbitMQ the broker cannot join PostgreSQL's transaction, so a message that must leave only if a state change
-- commits is written here in that transaction instead; each process's sender (messaging/outbox.py) takes committed
-- rows (FOR UPDATE SKIP LOCKED), publishes them with publisher confirms and deletes them. A crash between commit and
-- publish leaves the row for the next sender: publishing is at least once. Unused (always empty) with PGMQ.
-- Not in schema `tasker` (that schema is tasker-core's, exactly): extensions live in `tasker_ext`.

CREATE SCHEMA IF NOT EXISTS tasker_ext;

CREATE TABLE tasker_ext.outbox (
    outbox_uuid uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
    queue varchar(64) NOT NULL,
    body jsonb NOT NULL,
    reads integer NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE tasker_ext.outbox IS
    'Messages committed with a state change and not yet published to RabbitMQ (the RabbitMQ transport''s outbox)';
COMMENT ON COLUMN tasker_ext.outbox.queue IS 'logical queue name (router.py), without the broker prefix';
COMMENT ON COLUMN tasker_ext.outbox.reads IS
    'how often the message was read before (a delayed re-send carries it, so consumers see the redelivery)';
COMMENT ON COLUMN tasker_ext.outbox.available_at IS
    'not published before this time: a message handed back with a delay (nack, failed result) waits here';

-- outbox_take_many: the due rows in insertion order (uuid v7 sorts by creation)
CREATE INDEX outbox_available_idx ON tasker_ext.outbox (available_at, outbox_uuid);
