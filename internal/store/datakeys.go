package store

import (
	"context"
	"fmt"
	"time"
)

// Data key states.
const (
	KeyActive  = "active"  // seals new values
	KeyRetired = "retired" // opens old values until they are re-sealed
)

// DataKey is one version of a workspace's data key, wrapped by the key
// service. The store never sees it unwrapped.
type DataKey struct {
	WorkspaceID int64
	Version     int
	Wrapped     []byte
	State       string
	CreatedAt   time.Time
}

// InsertDataKey stores a new wrapped data key version.
func (tx *Tx) InsertDataKey(ctx context.Context, k DataKey) error {
	_, err := tx.q.ExecContext(ctx,
		`INSERT INTO data_keys (workspace_id, version, wrapped, state, created_at)
		VALUES ($1, $2, $3, $4, $5)`,
		k.WorkspaceID, k.Version, k.Wrapped, k.State, now())
	if isUniqueViolation(err) {
		return fmt.Errorf("data key version %d: %w", k.Version, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert data key: %w", err)
	}
	return nil
}

// DataKeys lists the data keys of a workspace, or of every workspace when
// workspaceID is 0, oldest version first.
func (tx *Tx) DataKeys(ctx context.Context, workspaceID int64) ([]DataKey, error) {
	rows, err := tx.q.QueryContext(ctx,
		`SELECT workspace_id, version, wrapped, state, created_at FROM data_keys
		WHERE $1 = 0 OR workspace_id = $1 ORDER BY workspace_id, version`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	defer rows.Close()

	var out []DataKey
	for rows.Next() {
		var k DataKey
		var created int64
		if err := rows.Scan(&k.WorkspaceID, &k.Version, &k.Wrapped, &k.State, &created); err != nil {
			return nil, err
		}
		k.CreatedAt = fromMicros(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RewrapDataKey replaces the wrapped bytes of one data key version.
func (tx *Tx) RewrapDataKey(ctx context.Context, workspaceID int64, version int, wrapped []byte) error {
	_, err := tx.q.ExecContext(ctx,
		"UPDATE data_keys SET wrapped = $1 WHERE workspace_id = $2 AND version = $3",
		wrapped, workspaceID, version)
	return err
}

// RetireDataKeys marks every data key of a workspace but version retired.
func (tx *Tx) RetireDataKeys(ctx context.Context, workspaceID int64, except int) error {
	_, err := tx.q.ExecContext(ctx,
		"UPDATE data_keys SET state = $1 WHERE workspace_id = $2 AND version <> $3",
		KeyRetired, workspaceID, except)
	return err
}
