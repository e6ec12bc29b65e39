package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Object is a declarative configuration object applied with "keyhole apply":
// a resource type, tool, toolset, route and so on. Spec is its JSON form.
type Object struct {
	WorkspaceID int64
	Kind        string
	Name        string
	Spec        string
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

const objectColumns = "workspace_id, kind, name, spec, version, created_at, updated_at"

func scanObject(row interface{ Scan(...any) error }) (*Object, error) {
	var o Object
	var created, updated int64
	err := row.Scan(&o.WorkspaceID, &o.Kind, &o.Name, &o.Spec, &o.Version, &created, &updated)
	if err != nil {
		return nil, err
	}
	o.CreatedAt, o.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &o, nil
}

// Object returns the object of kind called name, or ErrNotFound.
func (tx *Tx) Object(ctx context.Context, workspaceID int64, kind, name string) (*Object, error) {
	row := tx.queryRow(ctx, "SELECT "+objectColumns+
		" FROM objects WHERE workspace_id = $1 AND kind = $2 AND name = $3",
		workspaceID, kind, name)
	o, err := scanObject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %q: %w", kind, name, err)
	}
	return o, nil
}

// Objects lists a workspace's objects of kind by name, or of every kind when
// kind is empty.
func (tx *Tx) Objects(ctx context.Context, workspaceID int64, kind string) ([]*Object, error) {
	rows, err := tx.q.QueryContext(ctx, "SELECT "+objectColumns+
		` FROM objects WHERE workspace_id = $1 AND ($2 = '' OR kind = $2)
		ORDER BY kind, name`, workspaceID, kind)
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", err)
	}
	defer rows.Close()

	var out []*Object
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, fmt.Errorf("list objects: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// PutObject creates or replaces an object and bumps its version. It returns
// the stored object.
func (tx *Tx) PutObject(ctx context.Context, workspaceID int64, kind, name, spec string) (*Object, error) {
	ts := now()
	row := tx.queryRow(ctx, "INSERT INTO objects ("+objectColumns+`)
		VALUES ($1, $2, $3, $4, 1, $5, $5)
		ON CONFLICT (workspace_id, kind, name) DO UPDATE SET
			spec = excluded.spec, version = objects.version + 1,
			updated_at = excluded.updated_at
		RETURNING `+objectColumns, workspaceID, kind, name, spec, ts)
	o, err := scanObject(row)
	if err != nil {
		return nil, fmt.Errorf("write %s %q: %w", kind, name, err)
	}
	return o, nil
}

// DeleteObject removes an object, or returns ErrNotFound.
func (tx *Tx) DeleteObject(ctx context.Context, workspaceID int64, kind, name string) error {
	res, err := tx.q.ExecContext(ctx,
		"DELETE FROM objects WHERE workspace_id = $1 AND kind = $2 AND name = $3",
		workspaceID, kind, name)
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", kind, name, ErrNotFound)
	}
	return nil
}
