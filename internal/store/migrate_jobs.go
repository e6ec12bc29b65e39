package store

func init() {
	migrations = append(migrations, migration{3, "jobs", `
CREATE TABLE jobs (
	id TEXT PRIMARY KEY,
	workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	kind TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	spec TEXT NOT NULL,
	args TEXT NOT NULL DEFAULT '{}',
	state TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	result TEXT,
	exit_code INTEGER NOT NULL DEFAULT -1,
	usage TEXT NOT NULL DEFAULT '{}',
	transcript TEXT,
	attempt INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL DEFAULT 1,
	worker TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0,
	cancel_at BIGINT NOT NULL DEFAULT 0,
	run_after BIGINT NOT NULL DEFAULT 0,
	trigger_name TEXT NOT NULL DEFAULT '',
	created_by TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	started_at BIGINT NOT NULL DEFAULT 0,
	finished_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_queued ON jobs (created_at) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (worker) WHERE state = 'running';
CREATE INDEX jobs_workspace ON jobs (workspace_id, created_at);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at > 0;
CREATE TABLE job_logs (
	job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	seq BIGINT NOT NULL,
	stream TEXT NOT NULL,
	at BIGINT NOT NULL,
	data {{blob}} NOT NULL,
	PRIMARY KEY (job_id, seq)
);
CREATE TABLE volume_leases (
	workspace_id BIGINT NOT NULL,
	name TEXT NOT NULL,
	job_id TEXT NOT NULL,
	lease_until BIGINT NOT NULL,
	PRIMARY KEY (workspace_id, name)
)`})
}
