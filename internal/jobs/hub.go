package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/store"
)

// notifyChannel is the PostgreSQL channel jobs notifications travel on.
const notifyChannel = "keyhole_jobs"

// Topics notified on the hub.
const (
	topicQueued = "queued" // a job was queued: workers wake
)

func jobTopic(id string) string { return "job:" + id }

// Hub carries "something changed" signals between the API and workers, in
// process and, on PostgreSQL, across processes. A signal carries no data:
// whoever wakes reads the database.
type Hub struct {
	db     *store.DB
	logger *slog.Logger

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewHub returns a hub over db. Call Run to hear other processes.
func NewHub(db *store.DB, logger *slog.Logger) *Hub {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{db: db, logger: logger, subs: map[string]map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives a value after each notification
// of topic (several may merge into one), and a function to unsubscribe.
func (h *Hub) Subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[topic] == nil {
		h.subs[topic] = map[chan struct{}]struct{}{}
	}
	h.subs[topic][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[topic], ch)
		if len(h.subs[topic]) == 0 {
			delete(h.subs, topic)
		}
		h.mu.Unlock()
	}
}

// Notify signals topic in this process and, on PostgreSQL, in every process
// listening.
func (h *Hub) Notify(ctx context.Context, topic string) {
	h.local(topic)
	if h.db.Dialect() == store.Postgres {
		_, err := h.db.SQL().ExecContext(ctx, "SELECT pg_notify($1, $2)", notifyChannel, topic)
		if err != nil {
			h.logger.WarnContext(ctx, "jobs: notify failed", "topic", topic, "error", err)
		}
	}
}

func (h *Hub) local(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[topic] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run listens for other processes' notifications until ctx ends. On SQLite
// it returns at once: only one process uses a SQLite database's queue.
func (h *Hub) Run(ctx context.Context) {
	pool := h.db.Pool()
	if pool == nil {
		return
	}
	for ctx.Err() == nil {
		if err := h.listen(ctx); err != nil && ctx.Err() == nil {
			h.logger.WarnContext(ctx, "jobs: listen failed; retrying", "error", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
}

func (h *Hub) listen(ctx context.Context) error {
	pc, err := h.db.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	// The listening connection leaves the pool for good, so that nobody
	// else is handed a connection with a LISTEN on it.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	// Anything may have happened while not listening.
	h.local(topicQueued)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		h.local(n.Payload)
	}
}
