package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyhole/keyhole/internal/store"
)

// Filter selects entries for [Log.List].
type Filter struct {
	Since  time.Time
	Action string // an action, or a prefix of actions before a dot: "resource"
	After  int64  // only entries after this sequence number
	Limit  int    // at most this many, newest first when Newest is set
	Newest bool
}

// List returns a workspace's entries that f selects.
func (l *Log) List(ctx context.Context, workspace string, f Filter) ([]Entry, error) {
	recs, err := l.db.Direct().AuditRecords(ctx, store.AuditFilter{Workspace: workspace,
		AfterSeq: f.After, Since: f.Since, Action: f.Action, Limit: f.Limit, Newest: f.Newest})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		e := Entry{Seq: r.Seq, At: r.At, Workspace: r.Workspace, Actor: r.Actor,
			Action: r.Action, Target: r.Target, Outcome: r.Outcome, Hash: hex.EncodeToString(r.Hash)}
		if r.Detail != "{}" {
			_ = json.Unmarshal([]byte(r.Detail), &e.Detail)
		}
		out = append(out, e)
	}
	return out, nil
}

// Verification is the result of checking a chain.
type Verification struct {
	OK       bool   `json:"ok"`
	Records  int64  `json:"records"`             // how many links were checked
	BrokenAt int64  `json:"broken_at,omitempty"` // sequence number of the first bad link
	Reason   string `json:"reason,omitempty"`
	Head     string `json:"head,omitempty"` // hash of the last good record
}

// Verify walks a workspace's chain from the start and reports the first
// record whose hash does not match its contents, whose link to the previous
// record is wrong, or whose sequence number skips.
func (l *Log) Verify(ctx context.Context, workspace string) (*Verification, error) {
	v := &Verification{OK: true}
	prev := make([]byte, 32)
	var after int64
	for {
		page, err := l.db.Direct().AuditRecords(ctx,
			store.AuditFilter{Workspace: workspace, AfterSeq: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for i := range page {
			r := &page[i]
			if reason := checkLink(r, after+1, prev); reason != "" {
				v.OK, v.BrokenAt, v.Reason = false, r.Seq, reason
				return v, nil
			}
			prev, after = r.Hash, r.Seq
			v.Records++
			v.Head = hex.EncodeToString(r.Hash)
		}
		if len(page) < 1000 {
			return v, nil
		}
	}
}

func checkLink(r *store.AuditRecord, wantSeq int64, prev []byte) string {
	switch {
	case r.Seq != wantSeq:
		return fmt.Sprintf("sequence jumps from %d to %d: records are missing", wantSeq-1, r.Seq)
	case !bytes.Equal(r.PrevHash, prev):
		return "its link to the previous record does not match: a record before it was changed or removed"
	case !bytes.Equal(r.Hash, hash(r)):
		return "its contents do not match its hash: the record was edited"
	}
	return ""
}
