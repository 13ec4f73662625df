-- 0008: tell the planner how many rows the transition functions return.
--
-- A set-returning function is assumed to return 1000 rows. Statements that join the result of a compare-and-swap
-- (a worker's claim reads each claimed step's context) were then planned as hash joins over whole tables: on
-- PostgreSQL 15 a claim took hundreds of milliseconds once the tables held a few thousand tasks. A batch is tens of
-- rows, so index lookups per returned row are right.
ALTER FUNCTION tasker.step_transition_many(
    uuid[], text[], jsonb[], jsonb[], int[], bool[], bool[], bool[], bool[], bool[], jsonb[], int[], bool[], uuid[],
    uuid[], bigint[]
) ROWS 20;
ALTER FUNCTION tasker.task_transition_many(uuid[], text[], jsonb[], jsonb[]) ROWS 20;
