DROP INDEX webhook_deliveries_pending_idx;
DROP INDEX webhook_deliveries_pending_user_idx;
DROP INDEX webhook_deliveries_delivered_idx;
DROP INDEX webhook_deliveries_failed_idx;
CREATE INDEX webhook_deliveries_queue_idx ON webhook_deliveries (url, status, occurred_at, event_id);
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (url, user_id, status, occurred_at);
CREATE INDEX webhook_deliveries_delivered_idx ON webhook_deliveries (status, delivered_at);
