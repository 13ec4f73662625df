-- 0007: let the hot-path updates of workflow_steps be HOT (heap-only) updates.
--
-- A step row is updated on every transition (in_process, attempts, results, updated_at). The partial index that
-- serves readiness carried in_process and attempts in INCLUDE, which made every such update rewrite all of the
-- table's indexes. Readiness reads the heap rows anyway, so the index keeps only its key; with free space left on
-- each page (fillfactor), updates that change no indexed column stay on the page and touch no index.
DROP INDEX tasker.idx_workflow_steps_task_unprocessed;
-- steps of a task that are not finished yet (readiness, execution context)
CREATE INDEX idx_workflow_steps_task_unprocessed ON tasker.workflow_steps (task_uuid) WHERE NOT processed;
ALTER TABLE tasker.workflow_steps SET (fillfactor = 70);
ALTER TABLE tasker.tasks SET (fillfactor = 85);
