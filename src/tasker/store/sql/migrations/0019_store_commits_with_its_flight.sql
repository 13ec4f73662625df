-- 0019: a guard that lets a worker commit its result store in the same flight as the store itself.
--
-- A worker's store (tasker.step_result_store_many, 0018) usually moves its tasks on itself: it completes a
-- standard step's success and enqueues (and claims) what comes next. The worker still waited for the answer
-- before sending COMMIT, in case some result needed the engine's own planning in the same transaction (a task
-- with a failed step, a step the store did not complete): a round trip per step for the rare case.
--
-- With this guard the worker sends the store, its claim statement and the Sync together, in one implicit
-- transaction that commits at the Sync (store.steps, `step_result_store_moved_on`). The guard makes that safe: when
-- some result was applied here (its task locked by this transaction) but its task was not moved on by the store,
-- it raises SQLSTATE TK001 and the whole flight rolls back, as if it had never been sent. The worker then stores
-- the results again the long way, in a transaction of its own in which it plans them. Nothing half-done is ever
-- committed: either the store moved everything it holds on, or nothing happened.
CREATE FUNCTION tasker.step_results_moved_on_or_fail(needs_planning boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF needs_planning THEN
        RAISE EXCEPTION 'a stored result needs the engine''s planning in its transaction'
            USING ERRCODE = 'TK001',
                  HINT = 'store the results again in a transaction of their own and plan them there';
    END IF;
    RETURN true;
END
$fn$;
