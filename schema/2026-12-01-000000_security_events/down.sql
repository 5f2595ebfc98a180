DROP TABLE server_keys;
DROP TABLE security_events;
