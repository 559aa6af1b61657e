-- The alert store's and the API's tables as create_all made them in SQLite before migrations (0.2; lifeline 0.3.0's
-- baseline). Frozen: a test builds a database from it and upgrades it (tests/unit/test_migrations.py).

CREATE TABLE alerts (
	id INTEGER NOT NULL,
	rule_id VARCHAR NOT NULL,
	site VARCHAR NOT NULL,
	device VARCHAR NOT NULL,
	point VARCHAR NOT NULL,
	state VARCHAR(32) NOT NULL,
	severity SMALLINT NOT NULL,
	first_ms BIGINT,
	last_ms BIGINT,
	count INTEGER NOT NULL,
	value TEXT NOT NULL,
	assignee VARCHAR,
	shelved_until_ms BIGINT,
	shelve_reason TEXT NOT NULL,
	out_of_service BOOLEAN NOT NULL,
	out_of_service_reason TEXT NOT NULL,
	unack_since_ms BIGINT,
	escalation_level INTEGER NOT NULL,
	escalated_ms BIGINT,
	chattering BOOLEAN NOT NULL,
	title TEXT NOT NULL,
	audience VARCHAR NOT NULL,
	area VARCHAR,
	profile VARCHAR,
	reason TEXT NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT alerts_key UNIQUE (rule_id, site, device, point)
);

CREATE INDEX alerts_device ON alerts (device);

CREATE INDEX alerts_audience ON alerts (audience);

CREATE INDEX alerts_last_ms ON alerts (last_ms);

CREATE INDEX alerts_state ON alerts (state);

CREATE INDEX alerts_site ON alerts (site);

CREATE TABLE audit_log (
	id INTEGER NOT NULL,
	ts_ms BIGINT NOT NULL,
	who VARCHAR NOT NULL,
	action VARCHAR NOT NULL,
	target VARCHAR NOT NULL,
	source VARCHAR NOT NULL,
	detail TEXT NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX audit_log_ts ON audit_log (ts_ms);

CREATE INDEX audit_log_who ON audit_log (who, ts_ms);

CREATE TABLE state_blobs (
	name VARCHAR NOT NULL,
	data TEXT NOT NULL,
	PRIMARY KEY (name)
);

CREATE TABLE alert_history (
	id INTEGER NOT NULL,
	alert_id BIGINT NOT NULL,
	ts_ms BIGINT NOT NULL,
	who VARCHAR NOT NULL,
	action VARCHAR(32) NOT NULL,
	from_state VARCHAR(32) NOT NULL,
	to_state VARCHAR(32) NOT NULL,
	reason TEXT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(alert_id) REFERENCES alerts (id) ON DELETE CASCADE
);

CREATE INDEX alert_history_alert ON alert_history (alert_id, id);

CREATE TABLE alert_notes (
	id INTEGER NOT NULL,
	alert_id BIGINT NOT NULL,
	ts_ms BIGINT NOT NULL,
	who VARCHAR NOT NULL,
	text TEXT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(alert_id) REFERENCES alerts (id) ON DELETE CASCADE
);

CREATE INDEX alert_notes_alert ON alert_notes (alert_id, id);

CREATE TABLE notifications (
	id INTEGER NOT NULL,
	ts_ms BIGINT NOT NULL,
	message_id VARCHAR NOT NULL,
	kind VARCHAR(32) NOT NULL,
	audience VARCHAR NOT NULL,
	channel VARCHAR NOT NULL,
	channel_type VARCHAR NOT NULL,
	target TEXT NOT NULL,
	ok BOOLEAN NOT NULL,
	attempts INTEGER NOT NULL,
	error TEXT NOT NULL,
	alert_id BIGINT,
	text TEXT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(alert_id) REFERENCES alerts (id) ON DELETE SET NULL
);

CREATE INDEX notifications_ts ON notifications (ts_ms);

CREATE INDEX notifications_alert ON notifications (alert_id);

CREATE INDEX notifications_message ON notifications (message_id, channel);

CREATE TABLE notification_outbox (
	id INTEGER NOT NULL,
	created_ms BIGINT NOT NULL,
	message_id VARCHAR NOT NULL,
	message TEXT NOT NULL,
	alert_id BIGINT,
	PRIMARY KEY (id),
	UNIQUE (message_id),
	FOREIGN KEY(alert_id) REFERENCES alerts (id) ON DELETE SET NULL
);

CREATE TABLE api_users (
	username VARCHAR(64) NOT NULL,
	password_hash TEXT NOT NULL,
	role VARCHAR(32) NOT NULL,
	areas TEXT NOT NULL,
	disabled BOOLEAN NOT NULL,
	must_change_password BOOLEAN NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (username)
);

CREATE TABLE api_selections (
	id VARCHAR(64) NOT NULL,
	site VARCHAR(64) NOT NULL,
	device VARCHAR(64) NOT NULL,
	username VARCHAR(64) NOT NULL,
	created_ms BIGINT NOT NULL,
	expires_ms BIGINT NOT NULL,
	used_by VARCHAR(64),
	PRIMARY KEY (id)
);

CREATE TABLE api_commands (
	id VARCHAR(64) NOT NULL,
	site VARCHAR(64) NOT NULL,
	device VARCHAR(64) NOT NULL,
	action VARCHAR(32) NOT NULL,
	target_pct TEXT,
	ttl_s TEXT NOT NULL,
	issued_ms BIGINT NOT NULL,
	expires_ms BIGINT NOT NULL,
	deadline_ms BIGINT NOT NULL,
	operator VARCHAR(64) NOT NULL,
	source VARCHAR(256) NOT NULL,
	state VARCHAR(32) NOT NULL,
	final BOOLEAN NOT NULL,
	interlock VARCHAR(32),
	reason TEXT NOT NULL,
	"before" TEXT NOT NULL,
	"after" TEXT NOT NULL,
	steps TEXT NOT NULL,
	updated_ms BIGINT NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX api_commands_gate ON api_commands (site, device, final);

CREATE INDEX api_commands_deadline ON api_commands (final, deadline_ms);

CREATE TABLE api_tokens (
	id INTEGER NOT NULL,
	hash VARCHAR(64) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	name VARCHAR(128) NOT NULL,
	username VARCHAR(64) NOT NULL,
	created_ms BIGINT NOT NULL,
	expires_ms BIGINT,
	last_used_ms BIGINT,
	revoked BOOLEAN NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (hash),
	FOREIGN KEY(username) REFERENCES api_users (username) ON DELETE CASCADE
);

CREATE INDEX api_tokens_user ON api_tokens (username);
