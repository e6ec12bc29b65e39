package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
	JobTimedOut  = "timed_out"
)

// JobDone reports whether a state is final.
func JobDone(state string) bool {
	return state != JobQueued && state != JobRunning
}

// Job is a unit of work as the queue stores it.
type Job struct {
	ID          string
	WorkspaceID int64
	Workspace   string // name, filled on reads
	Kind        string // script, tool, agent, command
	Name        string
	Spec        string // JSON: what to run, frozen when the job was queued
	Args        string // JSON
	State       string
	Reason      string
	Result      string // JSON; empty when there is none
	ExitCode    int    // -1 when there is none
	Usage       string // JSON
	Transcript  string // JSON; agents only
	Attempt     int
	MaxAttempts int
	Worker      string
	LeaseUntil  time.Time
	CancelAt    time.Time
	RunAfter    time.Time
	Trigger     string
	CreatedBy   string
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
}

const jobColumns = `j.id, j.workspace_id, w.name, j.kind, j.name, j.spec, j.args, j.state,
	j.reason, j.result, j.exit_code, j.usage, j.transcript, j.attempt, j.max_attempts, j.worker,
	j.lease_until, j.cancel_at, j.run_after, j.trigger_name, j.created_by, j.created_at,
	j.started_at, j.finished_at`

func scanJob(row interface{ Scan(...any) error }) (*Job, error) {
	var j Job
	var result, transcript sql.NullString
	var lease, cancel, after, created, started, finished int64
	err := row.Scan(&j.ID, &j.WorkspaceID, &j.Workspace, &j.Kind, &j.Name, &j.Spec, &j.Args,
		&j.State, &j.Reason, &result, &j.ExitCode, &j.Usage, &transcript, &j.Attempt,
		&j.MaxAttempts, &j.Worker, &lease, &cancel, &after, &j.Trigger, &j.CreatedBy,
		&created, &started, &finished)
	if err != nil {
		return nil, err
	}
	j.Result, j.Transcript = result.String, transcript.String
	j.LeaseUntil, j.CancelAt, j.RunAfter = fromMicros(lease), fromMicros(cancel), fromMicros(after)
	j.CreatedAt, j.StartedAt, j.FinishedAt = fromMicros(created), fromMicros(started), fromMicros(finished)
	return &j, nil
}

func scanJobs(rows *sql.Rows) ([]*Job, error) {
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// InsertJob queues a job.
func (tx *Tx) InsertJob(ctx context.Context, j *Job) error {
	if j.State == "" {
		j.State = JobQueued
	}
	if j.MaxAttempts < 1 {
		j.MaxAttempts = 1
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = fromMicros(now())
	}
	_, err := tx.q.ExecContext(ctx, `INSERT INTO jobs (id, workspace_id, kind, name, spec, args,
		state, max_attempts, run_after, trigger_name, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		j.ID, j.WorkspaceID, j.Kind, j.Name, j.Spec, j.Args, j.State, j.MaxAttempts,
		toMicros(j.RunAfter), j.Trigger, j.CreatedBy, toMicros(j.CreatedAt))
	if err != nil {
		return fmt.Errorf("queue job: %w", err)
	}
	return nil
}

// Job returns one job, or ErrNotFound.
func (tx *Tx) Job(ctx context.Context, id string) (*Job, error) {
	j, err := scanJob(tx.queryRow(ctx, "SELECT "+jobColumns+
		" FROM jobs j JOIN workspaces w ON w.id = j.workspace_id WHERE j.id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read job: %w", err)
	}
	return j, nil
}

// JobFilter selects jobs for Jobs.
type JobFilter struct {
	WorkspaceID int64
	State       string // one state, or "" for any
	Name        string // one script, tool or agent name, or ""
	Limit       int
}

// Jobs lists a workspace's jobs, newest first.
func (tx *Tx) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := tx.q.QueryContext(ctx, "SELECT "+jobColumns+
		` FROM jobs j JOIN workspaces w ON w.id = j.workspace_id
		WHERE j.workspace_id = $1 AND ($2 = '' OR j.state = $2) AND ($3 = '' OR j.name = $3)
		ORDER BY j.created_at DESC, j.id DESC LIMIT $4`, f.WorkspaceID, f.State, f.Name, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return scanJobs(rows)
}

// ClaimJobs marks up to n queued jobs as running on worker, with a lease
// until leaseUntil, and returns them. Two workers never claim the same job.
func (db *DB) ClaimJobs(ctx context.Context, worker string, n int, leaseUntil time.Time) ([]*Job, error) {
	skip := ""
	if db.dialect == Postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	ts := now()
	var ids []string
	err := db.InTx(ctx, func(tx *Tx) error {
		rows, err := tx.q.QueryContext(ctx, `UPDATE jobs SET state = 'running', worker = $1,
			lease_until = $2, started_at = $3, attempt = attempt + 1, reason = ''
			WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_after <= $3
				ORDER BY created_at LIMIT $4`+skip+`)
			RETURNING id`, worker, toMicros(leaseUntil), ts, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	return db.jobsByID(ctx, ids)
}

func (db *DB) jobsByID(ctx context.Context, ids []string) ([]*Job, error) {
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = fmt.Sprintf("$%d", i+1)
		args[i] = id
	}
	rows, err := db.sql.QueryContext(ctx, "SELECT "+jobColumns+
		" FROM jobs j JOIN workspaces w ON w.id = j.workspace_id WHERE j.id IN ("+
		strings.Join(ph, ", ")+") ORDER BY j.created_at", args...)
	if err != nil {
		return nil, err
	}
	return scanJobs(rows)
}

// ExtendLeases renews the leases of every job worker is running and returns
// the ids of those whose cancellation was requested.
func (tx *Tx) ExtendLeases(ctx context.Context, worker string, until time.Time) ([]string, error) {
	_, err := tx.q.ExecContext(ctx,
		"UPDATE jobs SET lease_until = $1 WHERE worker = $2 AND state = 'running'",
		toMicros(until), worker)
	if err != nil {
		return nil, fmt.Errorf("extend job leases: %w", err)
	}
	return tx.CancelRequests(ctx, worker)
}

// CancelRequests returns the ids of jobs running on worker that were asked
// to stop.
func (tx *Tx) CancelRequests(ctx context.Context, worker string) ([]string, error) {
	rows, err := tx.q.QueryContext(ctx,
		"SELECT id FROM jobs WHERE worker = $1 AND state = 'running' AND cancel_at > 0", worker)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// JobOutcome is how a run ended.
type JobOutcome struct {
	State      string
	Reason     string
	Result     string // JSON, or empty
	ExitCode   int
	Usage      string // JSON
	Transcript string // JSON, or empty
	// Retry puts the job back in the queue after RetryAt instead of
	// finishing it.
	Retry   bool
	RetryAt time.Time
}

// FinishJob records the outcome of a run by worker. It reports false when
// the job is no longer this worker's (its lease expired and it was given to
// another), in which case nothing is written.
func (tx *Tx) FinishJob(ctx context.Context, id, worker string, o JobOutcome) (bool, error) {
	var res sql.Result
	var err error
	if o.Retry {
		res, err = tx.q.ExecContext(ctx, `UPDATE jobs SET state = 'queued', worker = '',
			lease_until = 0, reason = $1, run_after = $2
			WHERE id = $3 AND worker = $4 AND state = 'running'`,
			o.Reason, toMicros(o.RetryAt), id, worker)
	} else {
		res, err = tx.q.ExecContext(ctx, `UPDATE jobs SET state = $1, reason = $2, result = $3,
			exit_code = $4, usage = $5, transcript = $6, finished_at = $7, lease_until = 0
			WHERE id = $8 AND worker = $9 AND state = 'running'`,
			o.State, o.Reason, nullString(o.Result), o.ExitCode, orEmptyObject(o.Usage),
			nullString(o.Transcript), now(), id, worker)
	}
	if err != nil {
		return false, fmt.Errorf("finish job %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReapJobs handles jobs whose worker stopped renewing their lease: it puts
// them back in the queue when attempts remain and fails them otherwise. It
// returns how many it requeued and failed.
func (tx *Tx) ReapJobs(ctx context.Context, at time.Time) (int64, int64, error) {
	ts := toMicros(at)
	res, err := tx.q.ExecContext(ctx, `UPDATE jobs SET state = 'queued', worker = '',
		lease_until = 0, reason = 'its worker stopped; retried'
		WHERE state = 'running' AND lease_until < $1 AND attempt < max_attempts AND cancel_at = 0`, ts)
	if err != nil {
		return 0, 0, fmt.Errorf("requeue lost jobs: %w", err)
	}
	requeued, _ := res.RowsAffected()
	res, err = tx.q.ExecContext(ctx, `UPDATE jobs SET state = CASE WHEN cancel_at > 0
			THEN 'cancelled' ELSE 'failed' END,
		reason = CASE WHEN cancel_at > 0 THEN 'cancelled' ELSE
			'its worker stopped (crashed or was killed) and no attempts remain' END,
		finished_at = $1, lease_until = 0
		WHERE state = 'running' AND lease_until < $1`, ts)
	if err != nil {
		return 0, 0, fmt.Errorf("fail lost jobs: %w", err)
	}
	failed, _ := res.RowsAffected()
	return requeued, failed, nil
}

// RequeueWorkerJobs hands back every running job of worker at once, for a
// worker that knows its previous run died (the only worker of a SQLite
// database, at start).
func (tx *Tx) RequeueWorkerJobs(ctx context.Context) error {
	_, err := tx.q.ExecContext(ctx, "UPDATE jobs SET lease_until = 0 WHERE state = 'running'")
	return err
}

// CancelJob cancels a queued job at once, or asks the worker of a running
// one to stop it. It returns the job's state afterwards.
func (tx *Tx) CancelJob(ctx context.Context, id string) (string, error) {
	ts := now()
	_, err := tx.q.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', reason = 'cancelled while queued',
		finished_at = $1, cancel_at = $1 WHERE id = $2 AND state = 'queued'`, ts, id)
	if err != nil {
		return "", err
	}
	_, err = tx.q.ExecContext(ctx,
		"UPDATE jobs SET cancel_at = $1 WHERE id = $2 AND state = 'running' AND cancel_at = 0", ts, id)
	if err != nil {
		return "", err
	}
	j, err := tx.Job(ctx, id)
	if err != nil {
		return "", err
	}
	return j.State, nil
}

// JobLog is a chunk of a job's output.
type JobLog struct {
	JobID  string
	Seq    int64
	Stream string // stdout, stderr or keyhole
	At     time.Time
	Data   []byte
}

// AppendJobLogs stores log chunks.
func (tx *Tx) AppendJobLogs(ctx context.Context, logs []JobLog) error {
	for _, l := range logs {
		_, err := tx.q.ExecContext(ctx, `INSERT INTO job_logs (job_id, seq, stream, at, data)
			VALUES ($1, $2, $3, $4, $5)`, l.JobID, l.Seq, l.Stream, toMicros(l.At), l.Data)
		if err != nil {
			return fmt.Errorf("store job log: %w", err)
		}
	}
	return nil
}

// JobLogs returns a job's log chunks after seq, in order.
func (tx *Tx) JobLogs(ctx context.Context, jobID string, afterSeq int64, limit int) ([]JobLog, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := tx.q.QueryContext(ctx, `SELECT job_id, seq, stream, at, data FROM job_logs
		WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, jobID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read job logs: %w", err)
	}
	defer rows.Close()
	var out []JobLog
	for rows.Next() {
		var l JobLog
		var at int64
		if err := rows.Scan(&l.JobID, &l.Seq, &l.Stream, &at, &l.Data); err != nil {
			return nil, err
		}
		l.At = fromMicros(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

// DeleteJobsBefore removes finished jobs, and their logs, that ended before
// t. It returns how many it removed.
func (tx *Tx) DeleteJobsBefore(ctx context.Context, t time.Time) (int64, error) {
	_, err := tx.q.ExecContext(ctx, `DELETE FROM job_logs WHERE job_id IN
		(SELECT id FROM jobs WHERE finished_at > 0 AND finished_at < $1)`, toMicros(t))
	if err != nil {
		return 0, err
	}
	res, err := tx.q.ExecContext(ctx, "DELETE FROM jobs WHERE finished_at > 0 AND finished_at < $1", toMicros(t))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// AcquireVolume gives job an exclusive lease on a workspace volume until
// until, if no other live job holds it. It reports whether it did.
func (tx *Tx) AcquireVolume(ctx context.Context, workspaceID int64, name, jobID string, until time.Time) (bool, error) {
	if err := tx.Lock(ctx, fmt.Sprintf("volume:%d:%s", workspaceID, name)); err != nil {
		return false, err
	}
	var holder string
	var lease int64
	err := tx.q.QueryRowContext(ctx, `SELECT job_id, lease_until FROM volume_leases
		WHERE workspace_id = $1 AND name = $2`, workspaceID, name).Scan(&holder, &lease)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, err
	case holder != jobID && lease > now():
		return false, nil
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO volume_leases (workspace_id, name, job_id, lease_until)
		VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, name) DO UPDATE SET
		job_id = excluded.job_id, lease_until = excluded.lease_until`,
		workspaceID, name, jobID, toMicros(until))
	return err == nil, err
}

// ReleaseVolumes drops every volume lease a job holds.
func (tx *Tx) ReleaseVolumes(ctx context.Context, jobID string) error {
	_, err := tx.q.ExecContext(ctx, "DELETE FROM volume_leases WHERE job_id = $1", jobID)
	return err
}

// ExtendVolumeLeases renews the volume leases of a job.
func (tx *Tx) ExtendVolumeLeases(ctx context.Context, jobID string, until time.Time) error {
	_, err := tx.q.ExecContext(ctx, "UPDATE volume_leases SET lease_until = $1 WHERE job_id = $2",
		toMicros(until), jobID)
	return err
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func orEmptyObject(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}
