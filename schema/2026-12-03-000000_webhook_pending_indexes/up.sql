-- Portable SQL, as the earlier migrations: the same file runs on SQLite and PostgreSQL.

-- The outbox's indexes cover only the rows each reader looks for: the
-- dispatcher reads pending rows, retention reads delivered ones, the
-- metrics count failed ones. A delivery then enters the pending indexes
-- when it is enqueued and leaves them when it is settled, instead of
-- moving within three indexes that hold every delivery ever made: every
-- delivery is a write inside a request's commit, so each index page it
-- touches is written to the WAL and again by the checkpoint
-- (`bench/run --webhooks` prints the bytes written per untrust).
--
-- Queries name the status as a literal (`status = 'pending'`), which both
-- SQLite and PostgreSQL need to choose a partial index.
DROP INDEX webhook_deliveries_queue_idx;
DROP INDEX webhook_deliveries_user_idx;
DROP INDEX webhook_deliveries_delivered_idx;

-- The dispatcher: an endpoint's pending rows in event order; and per user,
-- the earlier pending rows that hold a later one back.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (url, occurred_at, event_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_user_idx ON webhook_deliveries (url, user_id, occurred_at)
    WHERE status = 'pending';
-- Retention of delivered rows.
CREATE INDEX webhook_deliveries_delivered_idx ON webhook_deliveries (delivered_at)
    WHERE status = 'delivered';
-- The failed-deliveries gauge and `webhook retry`.
CREATE INDEX webhook_deliveries_failed_idx ON webhook_deliveries (url)
    WHERE status = 'failed';
