-- 0016: retention removes a pruned task's domain events with it (tasker db prune), found by task.
CREATE INDEX IF NOT EXISTS domain_events_task_idx ON tasker_ext.domain_events (task_uuid);
