package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/store"
)

// Log streams.
const (
	StreamStdout  = "stdout"
	StreamStderr  = "stderr"
	StreamKeyhole = "keyhole" // keyhole's own notes about the run
)

// DefaultMaxLogBytes caps how much of a job's output is kept.
const DefaultMaxLogBytes = 10 << 20

// logFlushEvery is how often buffered output is written to the database.
const logFlushEvery = 100 * time.Millisecond

// logSink collects a job's output and writes it to the database in batches,
// keeping at most max bytes; output past that is counted and dropped.
type logSink struct {
	db     *store.DB
	hub    *Hub
	jobID  string
	max    int64
	logger *slog.Logger

	mu      sync.Mutex
	pending []store.JobLog
	seq     int64
	kept    int64
	dropped int64
	closed  bool

	flushNow chan struct{}
	done     chan struct{}
}

func newLogSink(db *store.DB, hub *Hub, jobID string, max int64, logger *slog.Logger) *logSink {
	s := &logSink{db: db, hub: hub, jobID: jobID, max: max, logger: logger,
		flushNow: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

// writer returns an io.Writer for one stream.
func (s *logSink) writer(stream string) *streamWriter { return &streamWriter{s: s, stream: stream} }

type streamWriter struct {
	s      *logSink
	stream string
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.s.add(w.stream, p)
	return len(p), nil
}

// notef records a line of keyhole's own about the run.
func (s *logSink) notef(format string, args ...any) {
	s.add(StreamKeyhole, []byte(fmt.Sprintf(format, args...)+"\n"))
}

func (s *logSink) add(stream string, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	room := s.max - s.kept
	if room <= 0 {
		s.dropped += int64(len(p))
		return
	}
	if int64(len(p)) > room {
		s.dropped += int64(len(p)) - room
		p = p[:room]
	}
	s.seq++
	s.kept += int64(len(p))
	s.pending = append(s.pending, store.JobLog{JobID: s.jobID, Seq: s.seq, Stream: stream,
		At: time.Now(), Data: append([]byte(nil), p...)})
	if len(s.pending) >= 256 {
		select {
		case s.flushNow <- struct{}{}:
		default:
		}
	}
}

func (s *logSink) loop() {
	defer close(s.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.flushNow:
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		s.flush()
		if closed {
			return
		}
	}
}

func (s *logSink) flush() {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.db.InTx(ctx, func(tx *store.Tx) error { return tx.AppendJobLogs(ctx, batch) })
	if err != nil {
		s.logger.Error("jobs: storing logs failed", "job_id", s.jobID, "chunks", len(batch), "error", err)
		return
	}
	s.hub.Notify(ctx, jobTopic(s.jobID))
}

// close notes any dropped output, writes what is left and stops the sink.
func (s *logSink) close() {
	s.mu.Lock()
	dropped, max := s.dropped, s.max
	s.mu.Unlock()
	if dropped > 0 {
		s.mu.Lock()
		s.seq++
		s.pending = append(s.pending, store.JobLog{JobID: s.jobID, Seq: s.seq, Stream: StreamKeyhole,
			At: time.Now(), Data: []byte(fmt.Sprintf("keyhole: output past %d bytes was dropped (%d bytes)\n",
				max, dropped))})
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.flushNow <- struct{}{}:
	default:
	}
	<-s.done
}

// tail keeps the last n bytes written to it: a script's standard output,
// whose end is its result when it writes no result.json.
type tail struct {
	mu  sync.Mutex
	n   int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.n {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.n {
		return string(t.buf[len(t.buf)-t.n:])
	}
	return string(t.buf)
}
