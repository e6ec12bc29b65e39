package store

// The live state of triggers, one row per trigger: who holds a connection
// trigger's lease and until when, what the connection last did, and the last
// schedule tick fired. The lease makes one server in a cluster hold each
// WebSocket or Discord connection; last_tick, advanced by compare-and-swap
// in the transaction that queues the tick's job, makes each tick fire once.
func init() {
	migrations = append(migrations, migration{4, "triggers", `
CREATE TABLE trigger_state (
	workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	holder TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0,
	state TEXT NOT NULL DEFAULT '',
	last_event_at BIGINT NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	events BIGINT NOT NULL DEFAULT 0,
	last_tick BIGINT NOT NULL DEFAULT 0,
	updated_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (workspace_id, name)
);
CREATE INDEX jobs_trigger_queued ON jobs (workspace_id, trigger_name) WHERE state = 'queued'`})
}
