// Package audit keeps keyhole's append-only audit log.
//
// Every change, every reveal, every token issued or revoked, every key
// rotation and every use of a credential appends a record. The records of a
// workspace form a chain: each one's hash covers its own fields and the hash
// of the record before it, so editing, deleting or reordering a record breaks
// every link after it, and [Log.Verify] names the first broken one.
//
// Records never hold a secret value: callers put resource paths, tool names,
// hosts and outcomes in them, never values.
//
// Appends that belong to a change are written in the change's own transaction
// ([Log.AppendTx]), so a change and its record commit or fail together.
// High-volume appends such as tool calls go through [Log.Append], which
// commits concurrent callers' records together in one transaction.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/store"
)

// Outcomes of an audited action.
const (
	OK     = "ok"
	Denied = "denied"
	Failed = "failed"
)

// Record is an audited event as callers describe it.
type Record struct {
	Workspace string
	Actor     string         // who: "token:ci", "job:123", "server"
	Action    string         // what: "resource.set", "token.create", "tool.call"
	Target    string         // on what: a resource path, tool or token name
	Outcome   string         // OK, Denied or Failed
	Detail    map[string]any // anything else worth keeping; never a secret
}

// Entry is a record as stored in the chain.
type Entry struct {
	Seq       int64          `json:"seq"`
	At        time.Time      `json:"at"`
	Workspace string         `json:"workspace"`
	Actor     string         `json:"actor"`
	Action    string         `json:"action"`
	Target    string         `json:"target"`
	Outcome   string         `json:"outcome"`
	Detail    map[string]any `json:"detail,omitempty"`
	Hash      string         `json:"hash"`
}

// Log appends to and reads the audit chain.
type Log struct {
	db     *store.DB
	logger *slog.Logger

	queue chan pending
	stop  chan struct{}
	done  sync.WaitGroup
	once  sync.Once
}

type pending struct {
	rec     Record
	at      time.Time
	err     chan error // nil: nobody waits
	barrier bool       // no record: answered once everything before it committed
}

// New returns a Log writing to db. Close it to stop its batching goroutine.
func New(db *store.DB, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{db: db, logger: logger, queue: make(chan pending, 1024), stop: make(chan struct{})}
	l.done.Add(1)
	go l.batcher()
	return l
}

// Close stops the Log after committing what is queued.
func (l *Log) Close() {
	l.once.Do(func() { close(l.stop) })
	l.done.Wait()
}

// ErrClosed reports an append after Close.
var ErrClosed = errors.New("audit: log closed")

// AppendTx appends rec inside tx, so it commits with the change it records.
func (l *Log) AppendTx(ctx context.Context, tx *store.Tx, rec Record) error {
	return appendTx(ctx, tx, rec, time.Now())
}

// Append appends rec in a transaction of its own, shared with whatever other
// records are being appended at the same moment, and returns once it is
// committed.
func (l *Log) Append(ctx context.Context, rec Record) error {
	return l.await(ctx, pending{rec: rec, at: time.Now(), err: make(chan error, 1)})
}

// await queues p and waits for the batch holding it to commit. When ctx ends
// first, a queued record is still written; the caller just stops waiting.
func (l *Log) await(ctx context.Context, p pending) error {
	select {
	case l.queue <- p:
	case <-l.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue appends rec without waiting for the commit, for records that must
// not slow the action they describe (tool calls, route requests). Records are
// committed in batches within milliseconds; one that fails to commit is
// logged. It blocks only while the queue is full.
func (l *Log) Enqueue(rec Record) {
	select {
	case l.queue <- pending{rec: rec, at: time.Now()}:
	case <-l.stop:
		l.logger.Error("audit: record after close", "action", rec.Action, "target", rec.Target)
	}
}

// Flush returns once every record enqueued before it is committed.
func (l *Log) Flush(ctx context.Context) error {
	return l.await(ctx, pending{barrier: true, err: make(chan error, 1)})
}

// batchLinger is how long an enqueued record waits for others to share its
// commit.
const batchLinger = 2 * time.Millisecond

// batcher commits queued records, as many at once as have arrived.
func (l *Log) batcher() {
	defer l.done.Done()
	for {
		var batch []pending
		select {
		case p := <-l.queue:
			batch = append(batch, p)
		case <-l.stop:
			l.drain()
			return
		}
		// A record nobody waits for lingers a moment for others to join it:
		// under load one commit then carries many tool calls' records.
		var timer *time.Timer
		var linger <-chan time.Time
		if batch[0].err == nil {
			timer = time.NewTimer(batchLinger)
			linger = timer.C
		}
	more:
		for len(batch) < 512 {
			if linger == nil {
				select {
				case p := <-l.queue:
					batch = append(batch, p)
				default:
					break more
				}
				continue
			}
			select {
			case p := <-l.queue:
				batch = append(batch, p)
				if p.err != nil {
					linger = nil // someone waits: commit what there is now
				}
			case <-linger:
				linger = nil
			}
		}
		if timer != nil {
			timer.Stop()
		}
		l.commit(batch)
	}
}

func (l *Log) drain() {
	for {
		select {
		case p := <-l.queue:
			l.commit([]pending{p})
		default:
			return
		}
	}
}

func (l *Log) commit(batch []pending) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.db.InTx(ctx, func(tx *store.Tx) error {
		heads := map[string]*store.AuditRecord{}
		for _, p := range batch {
			if p.barrier {
				continue
			}
			if err := appendWith(ctx, tx, p.rec, p.at, heads); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.logger.Error("audit: append failed", "records", len(batch), "error", err)
	}
	for _, p := range batch {
		if p.err != nil {
			p.err <- err
		}
	}
}

// appendTx links rec to the head of its workspace's chain.
func appendTx(ctx context.Context, tx *store.Tx, rec Record, at time.Time) error {
	return appendWith(ctx, tx, rec, at, nil)
}

// appendWith is appendTx with the heads of the chains this transaction has
// already extended, so a batch reads each chain's head once.
func appendWith(ctx context.Context, tx *store.Tx, rec Record, at time.Time,
	heads map[string]*store.AuditRecord) error {
	if rec.Workspace == "" || rec.Action == "" {
		return errors.New("audit: record needs a workspace and an action")
	}
	if rec.Outcome == "" {
		rec.Outcome = OK
	}
	detail := "{}"
	if len(rec.Detail) > 0 {
		b, err := json.Marshal(rec.Detail)
		if err != nil {
			return fmt.Errorf("audit: encode detail: %w", err)
		}
		detail = string(b)
	}

	head, seen := heads[rec.Workspace]
	if !seen {
		if err := tx.Lock(ctx, "audit:"+rec.Workspace); err != nil {
			return err
		}
		var err error
		if head, err = tx.AuditHead(ctx, rec.Workspace); err != nil {
			return err
		}
	}
	r := &store.AuditRecord{Workspace: rec.Workspace, Seq: 1, At: at.UTC().Truncate(time.Microsecond),
		Actor: rec.Actor, Action: rec.Action, Target: rec.Target, Outcome: rec.Outcome,
		Detail: detail, PrevHash: make([]byte, sha256.Size)}
	if head != nil {
		r.Seq, r.PrevHash = head.Seq+1, head.Hash
	}
	r.Hash = hash(r)
	if heads != nil {
		heads[rec.Workspace] = r
	}
	return tx.InsertAudit(ctx, r)
}

// hash is the link hash of r: SHA-256 over the previous hash and every
// field, each length-prefixed so that no two records encode alike.
func hash(r *store.AuditRecord) []byte {
	h := sha256.New()
	h.Write(r.PrevHash)
	var n [4]byte
	for _, f := range []string{
		strconv.FormatInt(r.Seq, 10), strconv.FormatInt(r.At.UnixMicro(), 10),
		r.Workspace, r.Actor, r.Action, r.Target, r.Outcome, r.Detail,
	} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}
