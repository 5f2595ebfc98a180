DROP TABLE sessions;
DROP TABLE devices;
