package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AuditRecord is one link of a workspace's audit chain as stored. Package
// audit computes Hash; the store only keeps it.
type AuditRecord struct {
	Workspace string
	Seq       int64
	At        time.Time
	Actor     string
	Action    string
	Target    string
	Outcome   string
	Detail    string // JSON object
	PrevHash  []byte
	Hash      []byte
}

// AuditHead returns the newest record of a workspace's chain, or nil when the
// chain is empty. Callers appending hold the workspace's audit lock.
func (tx *Tx) AuditHead(ctx context.Context, workspace string) (*AuditRecord, error) {
	r := AuditRecord{Workspace: workspace}
	err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_log WHERE workspace = $1
		ORDER BY seq DESC LIMIT 1`, workspace).Scan(&r.Seq, &r.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit head: %w", err)
	}
	return &r, nil
}

// InsertAudit appends a record.
func (tx *Tx) InsertAudit(ctx context.Context, r *AuditRecord) error {
	_, err := tx.exec(ctx, `INSERT INTO audit_log (workspace, seq, at, actor,
		action, target, outcome, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		r.Workspace, r.Seq, r.At.UnixMicro(), r.Actor, r.Action, r.Target, r.Outcome,
		r.Detail, r.PrevHash, r.Hash)
	if err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	return nil
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Workspace string
	AfterSeq  int64     // only records with a larger sequence number
	Since     time.Time // only records at or after this time
	Action    string    // only this action and those under it ("resource" takes "resource.set")
	Limit     int       // at most this many; 0 means no limit
	Newest    bool      // newest first instead of oldest first
}

// AuditRecords returns the records f selects.
func (tx *Tx) AuditRecords(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	order := "ASC"
	if f.Newest {
		order = "DESC"
	}
	limit := int64(f.Limit)
	if limit <= 0 {
		limit = -1
		if tx.dialect == Postgres {
			limit = 1 << 62
		}
	}
	rows, err := tx.q.QueryContext(ctx, `SELECT workspace, seq, at, actor, action, target,
		outcome, detail, prev_hash, hash FROM audit_log
		WHERE workspace = $1 AND seq > $2 AND at >= $3
		AND ($4 = '' OR action = $4 OR substr(action, 1, length($4) + 1) = $4 || '.')
		ORDER BY seq `+order+` LIMIT $5`,
		f.Workspace, f.AfterSeq, toMicros(f.Since), f.Action, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()

	var out []AuditRecord
	for rows.Next() {
		var r AuditRecord
		var at int64
		err := rows.Scan(&r.Workspace, &r.Seq, &at, &r.Actor, &r.Action, &r.Target,
			&r.Outcome, &r.Detail, &r.PrevHash, &r.Hash)
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		r.At = time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// AuditRecord returns one record, or ErrNotFound.
func (tx *Tx) AuditRecord(ctx context.Context, workspace string, seq int64) (*AuditRecord, error) {
	recs, err := tx.AuditRecords(ctx, AuditFilter{Workspace: workspace, AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || recs[0].Seq != seq {
		return nil, fmt.Errorf("audit record %d: %w", seq, ErrNotFound)
	}
	return &recs[0], nil
}
