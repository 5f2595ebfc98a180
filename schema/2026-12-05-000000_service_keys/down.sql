ALTER TABLE security_events DROP COLUMN actor_service;
DROP TABLE service_keys;
