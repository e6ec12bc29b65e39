package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Resource is a stored resource: its metadata and its value sealed by
// package secrets. The value's plaintext never reaches the store.
type Resource struct {
	WorkspaceID  int64
	Path         string
	Type         string
	Description  string
	AllowedHosts []string // nil means the type's default hosts
	Version      int64    // bumped by every write; bound into the seal
	KeyVersion   int      // data key version that sealed the value
	Sealed       []byte
	Reference    string // where an externally held value lives (e.g. Vault)
	CreatedAt    time.Time
	UpdatedAt    time.Time
	UpdatedBy    string
}

const resourceColumns = `workspace_id, path, type, description, allowed_hosts, version,
	key_version, sealed, reference, created_at, updated_at, updated_by`

func scanResource(row interface{ Scan(...any) error }) (*Resource, error) {
	var r Resource
	var hosts, ref sql.NullString
	var created, updated int64
	err := row.Scan(&r.WorkspaceID, &r.Path, &r.Type, &r.Description, &hosts, &r.Version,
		&r.KeyVersion, &r.Sealed, &ref, &created, &updated, &r.UpdatedBy)
	if err != nil {
		return nil, err
	}
	if hosts.Valid {
		if err := json.Unmarshal([]byte(hosts.String), &r.AllowedHosts); err != nil {
			return nil, fmt.Errorf("resource %s: stored allowed_hosts: %w", r.Path, err)
		}
		if r.AllowedHosts == nil {
			r.AllowedHosts = []string{}
		}
	}
	r.Reference = ref.String
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &r, nil
}

// Resource returns the resource at path, or ErrNotFound.
func (tx *Tx) Resource(ctx context.Context, workspaceID int64, path string) (*Resource, error) {
	row := tx.queryRow(ctx, "SELECT "+resourceColumns+
		" FROM resources WHERE workspace_id = $1 AND path = $2", workspaceID, path)
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("resource %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read resource %s: %w", path, err)
	}
	return r, nil
}

// Resources lists the resources whose path starts with prefix, by path.
func (tx *Tx) Resources(ctx context.Context, workspaceID int64, prefix string) ([]*Resource, error) {
	rows, err := tx.q.QueryContext(ctx, "SELECT "+resourceColumns+
		` FROM resources WHERE workspace_id = $1 AND substr(path, 1, $2) = $3
		ORDER BY path`, workspaceID, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	defer rows.Close()

	var out []*Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, fmt.Errorf("list resources: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LockResource serialises writers of one resource path until the transaction
// ends, so that a read-modify-write of its version is atomic.
func (tx *Tx) LockResource(ctx context.Context, workspaceID int64, path string) error {
	return tx.Lock(ctx, fmt.Sprintf("resource:%d:%s", workspaceID, path))
}

// PutResource inserts or replaces the resource at r.Path. The caller holds
// LockResource and has sealed the value for r.Version.
func (tx *Tx) PutResource(ctx context.Context, r *Resource) error {
	var hosts sql.NullString
	if r.AllowedHosts != nil {
		b, _ := json.Marshal(r.AllowedHosts)
		hosts = sql.NullString{String: string(b), Valid: true}
	}
	var ref sql.NullString
	if r.Reference != "" {
		ref = sql.NullString{String: r.Reference, Valid: true}
	}
	ts := now()
	_, err := tx.q.ExecContext(ctx, "INSERT INTO resources ("+resourceColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)
		ON CONFLICT (workspace_id, path) DO UPDATE SET
			type = excluded.type, description = excluded.description,
			allowed_hosts = excluded.allowed_hosts, version = excluded.version,
			key_version = excluded.key_version, sealed = excluded.sealed,
			reference = excluded.reference, updated_at = excluded.updated_at,
			updated_by = excluded.updated_by`,
		r.WorkspaceID, r.Path, r.Type, r.Description, hosts, r.Version,
		r.KeyVersion, r.Sealed, ref, ts, r.UpdatedBy)
	if err != nil {
		return fmt.Errorf("write resource %s: %w", r.Path, err)
	}
	r.UpdatedAt = fromMicros(ts)
	return nil
}

// ResealResource replaces a resource's sealed value and key version if its
// version is still version; it reports ErrConflict otherwise.
func (tx *Tx) ResealResource(ctx context.Context, workspaceID int64, path string,
	version int64, keyVersion int, sealed []byte) error {
	res, err := tx.q.ExecContext(ctx, `UPDATE resources SET sealed = $1, key_version = $2
		WHERE workspace_id = $3 AND path = $4 AND version = $5`,
		sealed, keyVersion, workspaceID, path, version)
	if err != nil {
		return fmt.Errorf("reseal resource %s: %w", path, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("reseal resource %s: %w", path, ErrConflict)
	}
	return nil
}

// DeleteResource removes the resource at path, or returns ErrNotFound.
func (tx *Tx) DeleteResource(ctx context.Context, workspaceID int64, path string) error {
	res, err := tx.q.ExecContext(ctx,
		"DELETE FROM resources WHERE workspace_id = $1 AND path = $2", workspaceID, path)
	if err != nil {
		return fmt.Errorf("delete resource %s: %w", path, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("resource %s: %w", path, ErrNotFound)
	}
	return nil
}
