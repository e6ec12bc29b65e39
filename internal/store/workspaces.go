package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Workspace is a tenant: its own data key, resources, tools and tokens.
type Workspace struct {
	ID        int64
	Name      string
	Settings  string // JSON object
	CreatedAt time.Time
}

// CreateWorkspace adds a workspace, or returns ErrExists.
func (tx *Tx) CreateWorkspace(ctx context.Context, name string) (*Workspace, error) {
	ws := &Workspace{Name: name, Settings: "{}", CreatedAt: fromMicros(now())}
	err := tx.queryRow(ctx,
		"INSERT INTO workspaces (name, settings, created_at) VALUES ($1, $2, $3) RETURNING id",
		name, ws.Settings, toMicros(ws.CreatedAt)).Scan(&ws.ID)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("workspace %q: %w", name, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create workspace: %w", err)
	}
	return ws, nil
}

// Workspace returns the workspace called name, or ErrNotFound.
func (tx *Tx) Workspace(ctx context.Context, name string) (*Workspace, error) {
	var ws Workspace
	var created int64
	err := tx.queryRow(ctx,
		"SELECT id, name, settings, created_at FROM workspaces WHERE name = $1", name).
		Scan(&ws.ID, &ws.Name, &ws.Settings, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("workspace %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read workspace: %w", err)
	}
	ws.CreatedAt = fromMicros(created)
	return &ws, nil
}

// Workspaces lists every workspace by name.
func (tx *Tx) Workspaces(ctx context.Context) ([]Workspace, error) {
	rows, err := tx.q.QueryContext(ctx,
		"SELECT id, name, settings, created_at FROM workspaces ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	defer rows.Close()

	var out []Workspace
	for rows.Next() {
		var ws Workspace
		var created int64
		if err := rows.Scan(&ws.ID, &ws.Name, &ws.Settings, &created); err != nil {
			return nil, err
		}
		ws.CreatedAt = fromMicros(created)
		out = append(out, ws)
	}
	return out, rows.Err()
}

// SetWorkspaceSettings replaces a workspace's settings document.
func (tx *Tx) SetWorkspaceSettings(ctx context.Context, id int64, settings string) error {
	_, err := tx.q.ExecContext(ctx,
		"UPDATE workspaces SET settings = $1 WHERE id = $2", settings, id)
	return err
}
