package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Token is an API token as stored: only the SHA-256 hash of its secret.
type Token struct {
	ID          string
	WorkspaceID int64
	Workspace   string // name, filled on reads
	Name        string
	Hash        []byte
	Scopes      []string
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	RevokedAt   time.Time // zero: live
	LastUsedAt  time.Time
}

const tokenColumns = `t.id, t.workspace_id, w.name, t.name, t.hash, t.scopes, t.created_by,
	t.created_at, t.expires_at, t.revoked_at, t.last_used_at`

func scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	var t Token
	var scopes string
	var created, expires, revoked, used int64
	err := row.Scan(&t.ID, &t.WorkspaceID, &t.Workspace, &t.Name, &t.Hash, &scopes,
		&t.CreatedBy, &created, &expires, &revoked, &used)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return nil, fmt.Errorf("token %s: stored scopes: %w", t.ID, err)
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	t.RevokedAt, t.LastUsedAt = fromMicros(revoked), fromMicros(used)
	return &t, nil
}

// InsertToken stores a token; a live token of the same name in the same
// workspace makes it fail with ErrExists.
func (tx *Tx) InsertToken(ctx context.Context, t *Token) error {
	scopes, _ := json.Marshal(t.Scopes)
	t.CreatedAt = fromMicros(now())
	_, err := tx.q.ExecContext(ctx, `INSERT INTO tokens (id, workspace_id, name, hash,
		scopes, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.WorkspaceID, t.Name, t.Hash, string(scopes), t.CreatedBy,
		toMicros(t.CreatedAt), toMicros(t.ExpiresAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("token %q: %w", t.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return nil
}

// TokenByHash returns the token whose secret hashes to hash, live or not.
func (tx *Tx) TokenByHash(ctx context.Context, hash []byte) (*Token, error) {
	row := tx.queryRow(ctx, "SELECT "+tokenColumns+
		" FROM tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.hash = $1", hash)
	t, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	return t, nil
}

// Tokens lists a workspace's tokens, newest first; revoked ones only when
// withRevoked is set.
func (tx *Tx) Tokens(ctx context.Context, workspaceID int64, withRevoked bool) ([]*Token, error) {
	rows, err := tx.q.QueryContext(ctx, "SELECT "+tokenColumns+
		` FROM tokens t JOIN workspaces w ON w.id = t.workspace_id
		WHERE t.workspace_id = $1 AND ($2 OR t.revoked_at = 0)
		ORDER BY t.created_at DESC, t.id`, workspaceID, withRevoked)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()

	var out []*Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes the live token of a workspace whose id or name is
// idOrName, and returns it; ErrNotFound when there is none.
func (tx *Tx) RevokeToken(ctx context.Context, workspaceID int64, idOrName string) (*Token, error) {
	row := tx.queryRow(ctx, "SELECT "+tokenColumns+
		` FROM tokens t JOIN workspaces w ON w.id = t.workspace_id
		WHERE t.workspace_id = $1 AND t.revoked_at = 0 AND (t.id = $2 OR t.name = $2)`,
		workspaceID, idOrName)
	t, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token %q: %w", idOrName, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	t.RevokedAt = fromMicros(now())
	_, err = tx.q.ExecContext(ctx, "UPDATE tokens SET revoked_at = $1 WHERE id = $2",
		toMicros(t.RevokedAt), t.ID)
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	return t, nil
}

// TouchToken records that a token was used at t.
func (tx *Tx) TouchToken(ctx context.Context, id string, t time.Time) error {
	_, err := tx.q.ExecContext(ctx, "UPDATE tokens SET last_used_at = $1 WHERE id = $2",
		toMicros(t), id)
	return err
}
