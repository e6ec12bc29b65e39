package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/jobs"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/trigger"
	"github.com/keyhole/keyhole/internal/trigger/schedule"
	"github.com/keyhole/keyhole/internal/trigger/spec"
)

// Trigger timing. A dead holder's lease lapses within triggerLease of its
// last renewal and another server sees that within triggerPoll, so a
// connection moves within 12 seconds.
const (
	triggerPoll  = 2 * time.Second
	triggerLease = 10 * time.Second
	// retryStart is how long a connection trigger that could not start
	// (its resource missing, say) waits before it is tried again.
	retryStart = time.Minute
	// replyWait bounds how long a reply waits for its job to finish.
	replyWait = time.Hour
)

// triggerKey names a trigger across workspaces.
type triggerKey struct {
	wsID int64
	name string
}

// liveTrigger is a connection trigger this server holds the lease of.
type liveTrigger struct {
	fingerprint string // definition and resource versions it runs with
	cancel      context.CancelFunc
	done        chan struct{}
	status      func() (state, lastError string)
	startedAt   time.Time

	mu    sync.Mutex
	fatal string // why it stopped for good, until its definition changes
}

func (lt *liveTrigger) setFatal(msg string) {
	lt.mu.Lock()
	lt.fatal = msg
	lt.mu.Unlock()
}

// state returns the state and last error to record.
func (lt *liveTrigger) state() (string, string) {
	lt.mu.Lock()
	fatal := lt.fatal
	lt.mu.Unlock()
	if fatal != "" {
		return "stopped", fatal
	}
	return lt.status()
}

// triggers runs this server's share of the cluster's triggers: every
// server fires schedule ticks (each tick once, by compare-and-swap), and
// each connection trigger runs on the one server holding its lease.
type triggers struct {
	s      *Server
	holder string
	log    *slog.Logger

	ctx     context.Context // the runner's, for replies that outlive a connection
	replies sync.WaitGroup

	mu   sync.Mutex
	live map[triggerKey]*liveTrigger
}

func newTriggers(s *Server) *triggers {
	return &triggers{s: s, holder: auth.NewID("srv_"), log: s.logger,
		live: map[triggerKey]*liveTrigger{}}
}

// run reconciles the triggers every triggerPoll until ctx ends, then stops
// the connections and gives up their leases.
func (t *triggers) run(ctx context.Context) {
	t.ctx = ctx
	tick := time.NewTicker(triggerPoll)
	defer tick.Stop()
	for {
		t.reconcile(ctx)
		select {
		case <-ctx.Done():
			t.stopAll()
			t.replies.Wait()
			return
		case <-tick.C:
		}
	}
}

// reconcile brings this server's triggers in line with the configuration.
func (t *triggers) reconcile(ctx context.Context) {
	wss, err := t.s.db.Direct().Workspaces(ctx)
	if err != nil {
		t.log.WarnContext(ctx, "trigger: list workspaces", "error", err)
		return
	}
	wanted := map[triggerKey]bool{}
	for i := range wss {
		ws := &wss[i]
		objs, err := t.s.db.Direct().Objects(ctx, ws.ID, spec.Kind)
		if err != nil {
			t.log.WarnContext(ctx, "trigger: list triggers", "workspace", ws.Name, "error", err)
			return // keep what runs rather than stop it on a read error
		}
		for _, obj := range objs {
			def, err := spec.Decode([]byte(obj.Spec))
			if err != nil || def.Disabled {
				continue
			}
			switch def.Type {
			case spec.Schedule:
				t.fireSchedule(ctx, ws, def, obj)
			case spec.WebSocket, spec.Discord:
				key := triggerKey{ws.ID, def.Name}
				wanted[key] = true
				t.hold(ctx, ws, def, t.fingerprint(ctx, ws, def, obj))
			}
		}
	}

	t.mu.Lock()
	var gone []triggerKey
	for key := range t.live {
		if !wanted[key] {
			gone = append(gone, key)
		}
	}
	t.mu.Unlock()
	for _, key := range gone {
		t.stop(key, "")
	}
}

// fingerprint names the versions a connection runs with: a change to the
// definition or to a resource it reads restarts it.
func (t *triggers) fingerprint(ctx context.Context, ws *store.Workspace, def *spec.Trigger,
	obj *store.Object) string {
	fp := fmt.Sprint(obj.Version)
	for _, path := range def.Resources() {
		r, err := t.s.db.Direct().Resource(ctx, ws.ID, path)
		if err == nil {
			fp += fmt.Sprintf("/%s@%d", path, r.Version)
		}
	}
	return fp
}

// hold takes or renews the lease of a connection trigger and keeps its
// connection running here while the lease is ours.
func (t *triggers) hold(ctx context.Context, ws *store.Workspace, def *spec.Trigger, fp string) {
	key := triggerKey{ws.ID, def.Name}
	t.mu.Lock()
	lt := t.live[key]
	t.mu.Unlock()
	if lt != nil && lt.fingerprint != fp {
		t.stop(key, "restarting")
		lt = nil
	}

	ok, err := t.s.db.AcquireTriggerLease(ctx, ws.ID, def.Name, t.holder,
		time.Now().Add(triggerLease))
	switch {
	case err != nil:
		t.log.WarnContext(ctx, "trigger: renew lease", "trigger", def.Name, "error", err)
		return
	case !ok:
		if lt != nil {
			t.log.WarnContext(ctx, "trigger: lease taken by another server", "trigger", def.Name)
			t.stop(key, "")
		}
		return
	}

	if lt != nil && lt.status == nil && time.Since(lt.startedAt) > retryStart {
		t.stop(key, "retrying")
		lt = nil
	}
	if lt != nil {
		return // running: reportStatus records its state as it changes
	}
	lt = t.start(ws, def, fp)
	t.mu.Lock()
	t.live[key] = lt
	t.mu.Unlock()
	if lt.status == nil { // it could not start: record why, once
		state, lastErr := lt.state()
		if err := t.s.db.SetTriggerStatus(ctx, ws.ID, def.Name, t.holder, state, lastErr); err != nil {
			t.log.WarnContext(ctx, "trigger: record status", "trigger", def.Name, "error", err)
		}
	}
}

// start starts a connection trigger's client. A trigger that cannot start
// is kept, stopped with the reason, and tried again after retryStart.
func (t *triggers) start(ws *store.Workspace, def *spec.Trigger, fp string) *liveTrigger {
	ctx, cancel := context.WithCancel(t.ctx)
	lt := &liveTrigger{fingerprint: fp, cancel: cancel, done: make(chan struct{}),
		startedAt: time.Now()}
	var run func(context.Context) error
	var err error
	switch def.Type {
	case spec.Discord:
		run, lt.status, err = t.discordClient(ctx, ws, def)
	case spec.WebSocket:
		run, lt.status, err = t.websocketClient(ctx, ws, def)
	}
	if err != nil {
		msg := fmt.Sprintf("cannot start: %v", err)
		lt.setFatal(msg)
		close(lt.done)
		t.log.ErrorContext(ctx, "trigger: "+msg, "trigger", def.Name, "workspace", ws.Name)
		return lt
	}

	t.log.InfoContext(ctx, "trigger: connecting", "trigger", def.Name, "workspace", ws.Name,
		"type", def.Type, "holder", t.holder)
	t.s.audit.Enqueue(audit.Record{Workspace: ws.Name, Actor: "trigger:" + def.Name,
		Action: "trigger.connect", Target: def.Name, Outcome: audit.OK,
		Detail: map[string]any{"type": def.Type, "resources": def.Resources()}})
	go t.reportStatus(ctx, ws.ID, def.Name, lt)
	go func() {
		defer close(lt.done)
		if err := run(ctx); err != nil {
			// Discord refused for good (a bad token, say): stay stopped,
			// holding the lease so that no other server retries either,
			// until the definition or its resource changes.
			lt.setFatal(err.Error())
			t.log.ErrorContext(ctx, "trigger: stopped", "trigger", def.Name, "error", err)
		}
	}()
	return lt
}

// reportStatus records a connection's state whenever it changes, so that
// keyhole trigger list shows it within a moment.
func (t *triggers) reportStatus(ctx context.Context, wsID int64, name string, lt *liveTrigger) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var state, lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, le := lt.state()
		if st == state && le == lastErr {
			continue
		}
		if err := t.s.db.SetTriggerStatus(ctx, wsID, name, t.holder, st, le); err == nil {
			state, lastErr = st, le
		}
	}
}

// stop ends a connection and, unless it is restarting here, gives up its
// lease recording state.
func (t *triggers) stop(key triggerKey, state string) {
	t.mu.Lock()
	lt := t.live[key]
	delete(t.live, key)
	t.mu.Unlock()
	if lt == nil {
		return
	}
	lt.cancel()
	<-lt.done
	if state == "" {
		state = "stopped"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.s.db.ReleaseTriggerLease(ctx, key.wsID, key.name, t.holder, state); err != nil {
		t.log.Warn("trigger: release lease", "trigger", key.name, "error", err)
	}
}

func (t *triggers) stopAll() {
	t.mu.Lock()
	keys := make([]triggerKey, 0, len(t.live))
	for key := range t.live {
		keys = append(keys, key)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Go(func() { t.stop(key, "") })
	}
	wg.Wait()
}

// submit queues the job for one event, unless the trigger already has as
// many jobs waiting as it may: then it returns an error wrapping
// trigger.ErrQueueFull and queues nothing.
func (t *triggers) submit(ctx context.Context, ws *store.Workspace, def *spec.Trigger,
	event map[string]any) (*store.Job, error) {
	args, err := def.JobArgs(ctx, event)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, "invalid_args", err,
			fmt.Sprintf("trigger %s: %v", def.Name, err))
	}
	kind, name := def.Run.Kind()
	req := &jobs.Request{Kind: kind, Name: name, Args: args, Trigger: def.Name,
		Actor: "trigger:" + def.Name}

	var j *store.Job
	err = t.s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := tx.CountTriggerJobs(ctx, ws.ID, def.Name)
		if err != nil {
			return err
		}
		if n >= def.QueueLimit() {
			return fmt.Errorf("%w: trigger %s has %d jobs waiting (max_queued)",
				trigger.ErrQueueFull, def.Name, n)
		}
		if j, err = t.s.jobs.EnqueueTx(ctx, tx, ws, req); err != nil {
			return err
		}
		return tx.NoteTriggerEvent(ctx, ws.ID, def.Name, time.Now(), "")
	})
	if err != nil {
		return nil, err
	}
	t.s.jobs.NotifyQueued(ctx)
	return j, nil
}

// replyWhenDone waits for a job and passes its answer to post. It runs on
// the runner's context, so a reply is not lost when the connection that
// received the question restarts.
func (t *triggers) replyWhenDone(ws *store.Workspace, def *spec.Trigger, j *store.Job,
	post func(ctx context.Context, text string) error) {
	t.replies.Go(func() {
		ctx := t.ctx
		done, err := t.s.jobs.Wait(ctx, ws, j.ID, replyWait)
		if err != nil || !store.JobDone(done.State) {
			return
		}
		rec := audit.Record{Workspace: ws.Name, Actor: "trigger:" + def.Name,
			Action: "trigger.reply", Target: def.Name, Outcome: audit.OK,
			Detail: map[string]any{"job_id": j.ID, "type": def.Type}}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := post(pctx, replyText(done)); err != nil {
			rec.Outcome, rec.Detail["error"] = audit.Failed, err.Error()
			t.log.WarnContext(ctx, "trigger: reply failed", "trigger", def.Name,
				"job_id", j.ID, "error", err)
		}
		t.s.audit.Enqueue(rec)
	})
}

// replyText is what a finished job answers: a string result as it is, an
// object's content field, other JSON as written, or a short apology.
func replyText(j *store.Job) string {
	if j.State != store.JobSucceeded {
		return fmt.Sprintf("Sorry, I could not answer that (job %s %s).", j.ID,
			strings.ReplaceAll(j.State, "_", " "))
	}
	var v any
	if err := json.Unmarshal([]byte(j.Result), &v); err != nil {
		return strings.TrimSpace(j.Result)
	}
	switch r := v.(type) {
	case string:
		return r
	case map[string]any:
		if c, ok := r["content"].(string); ok {
			return c
		}
	case nil:
		return "(no answer)"
	}
	return strings.TrimSpace(j.Result)
}

// fireSchedule queues the due ticks of a schedule trigger. Each tick
// advances the trigger's last tick by compare-and-swap in the transaction
// that queues its job, so of several servers exactly one fires it.
func (t *triggers) fireSchedule(ctx context.Context, ws *store.Workspace, def *spec.Trigger,
	obj *store.Object) {
	sched, err := def.Schedule()
	if err != nil {
		return
	}
	catchup, _ := schedule.ParseCatchup(def.Catchup)
	last, err := t.s.db.Direct().TriggerLastTick(ctx, ws.ID, def.Name)
	if err != nil {
		t.log.WarnContext(ctx, "trigger: read schedule", "trigger", def.Name, "error", err)
		return
	}
	from := last
	if obj.CreatedAt.After(from) {
		from = obj.CreatedAt // a new schedule fires from when it was applied
	}
	due, skipped := sched.Due(from, time.Now(), schedule.Policy{Catchup: catchup})
	if skipped > 0 {
		t.log.InfoContext(ctx, "trigger: skipped missed ticks", "trigger", def.Name,
			"skipped", skipped, "catchup", string(catchup))
	}
	for _, tick := range due {
		fired, err := t.fireTick(ctx, ws, def, last, tick)
		if err != nil {
			t.log.WarnContext(ctx, "trigger: fire tick", "trigger", def.Name,
				"tick", tick.Time, "error", err)
		}
		if !fired {
			return // another server fired it, or it failed: look again next poll
		}
		last = tick.Time
	}
}

func (t *triggers) fireTick(ctx context.Context, ws *store.Workspace, def *spec.Trigger,
	prev time.Time, tick schedule.Tick) (bool, error) {
	fired, err := t.queueTick(ctx, ws, def, prev, tick)
	if err != nil {
		// The tick's job could not be queued (its args expression failed or
		// its script was deleted, say): record why and move past the tick
		// so that it does not block the next.
		_ = t.s.db.InTx(ctx, func(tx *store.Tx) error {
			if _, aerr := tx.AdvanceTriggerTick(ctx, ws.ID, def.Name, prev, tick.Time); aerr != nil {
				return aerr
			}
			return tx.NoteTriggerEvent(ctx, ws.ID, def.Name, time.Now(), err.Error())
		})
		return false, err
	}
	if fired {
		t.s.jobs.NotifyQueued(ctx)
	}
	return fired, nil
}

// queueTick advances the schedule from prev to tick and queues the tick's
// job in one transaction; it reports false when another server advanced it
// first.
func (t *triggers) queueTick(ctx context.Context, ws *store.Workspace, def *spec.Trigger,
	prev time.Time, tick schedule.Tick) (bool, error) {
	event := map[string]any{
		"message":  "scheduled run for " + tick.Time.Format(time.RFC3339),
		"tick":     tick.Time.Format(time.RFC3339),
		"catch_up": tick.CatchUp,
	}
	args, err := def.JobArgs(ctx, event)
	if err != nil {
		return false, err
	}
	kind, name := def.Run.Kind()
	var fired bool
	err = t.s.db.InTx(ctx, func(tx *store.Tx) error {
		ok, err := tx.AdvanceTriggerTick(ctx, ws.ID, def.Name, prev, tick.Time)
		if err != nil || !ok {
			return err
		}
		req := &jobs.Request{Kind: kind, Name: name, Args: args, Trigger: def.Name,
			Actor: "trigger:" + def.Name}
		if _, err := t.s.jobs.EnqueueTx(ctx, tx, ws, req); err != nil {
			return err
		}
		fired = true
		return nil
	})
	return fired, err
}
