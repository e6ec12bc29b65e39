package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TriggerState is the live state of one trigger, shared by every server.
type TriggerState struct {
	WorkspaceID int64
	Name        string
	Holder      string    // the server holding a connection trigger's lease
	LeaseUntil  time.Time // when that lease lapses unless renewed
	State       string    // connected, connecting, waiting, stopped, …
	LastEventAt time.Time
	LastError   string
	Events      int64 // events that started a job
	LastTick    time.Time
	UpdatedAt   time.Time
}

// ensureTrigger creates a trigger's state row if it has none.
func (tx *Tx) ensureTrigger(ctx context.Context, workspaceID int64, name string) error {
	_, err := tx.q.ExecContext(ctx, `INSERT INTO trigger_state (workspace_id, name, updated_at)
		VALUES ($1, $2, $3) ON CONFLICT (workspace_id, name) DO NOTHING`,
		workspaceID, name, now())
	if err != nil {
		return fmt.Errorf("create trigger state %s: %w", name, err)
	}
	return nil
}

// AcquireTriggerLease gives holder the lease on a trigger until until, when
// no other holder's lease is live, and reports whether it did. A holder
// renews its own lease the same way.
func (db *DB) AcquireTriggerLease(ctx context.Context, workspaceID int64, name, holder string,
	until time.Time) (bool, error) {
	var got bool
	err := db.InTx(ctx, func(tx *Tx) error {
		if err := tx.ensureTrigger(ctx, workspaceID, name); err != nil {
			return err
		}
		res, err := tx.q.ExecContext(ctx, `UPDATE trigger_state
			SET holder = $1, lease_until = $2, updated_at = $3
			WHERE workspace_id = $4 AND name = $5 AND (holder = $1 OR lease_until < $3)`,
			holder, toMicros(until), now(), workspaceID, name)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		got = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("take lease on trigger %s: %w", name, err)
	}
	return got, nil
}

// ReleaseTriggerLease gives up holder's lease on a trigger, recording state
// as the connection's last state.
func (db *DB) ReleaseTriggerLease(ctx context.Context, workspaceID int64, name, holder,
	state string) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE trigger_state
		SET holder = '', lease_until = 0, state = $1, updated_at = $2
		WHERE workspace_id = $3 AND name = $4 AND holder = $5`,
		state, now(), workspaceID, name, holder)
	if err != nil {
		return fmt.Errorf("release lease on trigger %s: %w", name, err)
	}
	return nil
}

// SetTriggerStatus records what holder's connection is doing: its state
// and its last error. It changes nothing when another server holds the
// trigger now.
func (db *DB) SetTriggerStatus(ctx context.Context, workspaceID int64, name, holder, state,
	lastError string) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE trigger_state
		SET state = $1, last_error = $2, updated_at = $3
		WHERE workspace_id = $4 AND name = $5 AND holder = $6`,
		state, lastError, now(), workspaceID, name, holder)
	if err != nil {
		return fmt.Errorf("record trigger %s status: %w", name, err)
	}
	return nil
}

// NoteTriggerEvent records an event of a trigger that has no connection,
// such as a webhook delivery or a schedule tick, and the error it met if any.
func (tx *Tx) NoteTriggerEvent(ctx context.Context, workspaceID int64, name string,
	at time.Time, failure string) error {
	if err := tx.ensureTrigger(ctx, workspaceID, name); err != nil {
		return err
	}
	events := 1
	if failure != "" {
		events = 0
	}
	_, err := tx.q.ExecContext(ctx, `UPDATE trigger_state
		SET last_event_at = $1, last_error = $2, events = events + $3, updated_at = $4
		WHERE workspace_id = $5 AND name = $6`,
		toMicros(at), failure, events, now(), workspaceID, name)
	if err != nil {
		return fmt.Errorf("record trigger %s event: %w", name, err)
	}
	return nil
}

// TriggerLastTick returns the last schedule tick fired for a trigger, or
// the zero time when none has.
func (tx *Tx) TriggerLastTick(ctx context.Context, workspaceID int64, name string) (time.Time, error) {
	var tick int64
	err := tx.q.QueryRowContext(ctx, `SELECT last_tick FROM trigger_state
		WHERE workspace_id = $1 AND name = $2`, workspaceID, name).Scan(&tick)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && tick == 0) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read trigger %s last tick: %w", name, err)
	}
	return fromMicros(tick), nil
}

// AdvanceTriggerTick moves a schedule's last fired tick from prev to next
// and reports whether this transaction did: when two servers fire the same
// tick, exactly one advances it, and only that one queues the tick's job.
func (tx *Tx) AdvanceTriggerTick(ctx context.Context, workspaceID int64, name string,
	prev, next time.Time) (bool, error) {
	if err := tx.ensureTrigger(ctx, workspaceID, name); err != nil {
		return false, err
	}
	res, err := tx.q.ExecContext(ctx, `UPDATE trigger_state
		SET last_tick = $1, last_event_at = $2, events = events + 1, updated_at = $2
		WHERE workspace_id = $3 AND name = $4 AND last_tick = $5`,
		toMicros(next), now(), workspaceID, name, toMicros(prev))
	if err != nil {
		return false, fmt.Errorf("advance trigger %s tick: %w", name, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// TriggerStates returns the state rows of a workspace's triggers by name.
func (tx *Tx) TriggerStates(ctx context.Context, workspaceID int64) (map[string]*TriggerState, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT name, holder, lease_until, state, last_event_at,
		last_error, events, last_tick, updated_at FROM trigger_state WHERE workspace_id = $1`,
		workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list trigger states: %w", err)
	}
	defer rows.Close()

	out := map[string]*TriggerState{}
	for rows.Next() {
		st := &TriggerState{WorkspaceID: workspaceID}
		var lease, event, tick, updated int64
		if err := rows.Scan(&st.Name, &st.Holder, &lease, &st.State, &event, &st.LastError,
			&st.Events, &tick, &updated); err != nil {
			return nil, fmt.Errorf("list trigger states: %w", err)
		}
		st.LeaseUntil, st.LastEventAt = fromMicros(lease), fromMicros(event)
		st.LastTick, st.UpdatedAt = fromMicros(tick), fromMicros(updated)
		out[st.Name] = st
	}
	return out, rows.Err()
}

// CountTriggerJobs counts a trigger's jobs that have not started yet.
func (tx *Tx) CountTriggerJobs(ctx context.Context, workspaceID int64, trigger string) (int, error) {
	var n int
	err := tx.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs
		WHERE workspace_id = $1 AND trigger_name = $2 AND state = 'queued'`,
		workspaceID, trigger).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count queued jobs of trigger %s: %w", trigger, err)
	}
	return n, nil
}
