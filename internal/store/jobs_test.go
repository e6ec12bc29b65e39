package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/store"
)

func queue(t *testing.T, db *store.DB, ws int64, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		j := &store.Job{ID: fmt.Sprintf("j_%04d", i), WorkspaceID: ws, Kind: "script",
			Name: "s", Spec: "{}", MaxAttempts: 2}
		if err := db.Direct().InsertJob(context.Background(), j); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

func TestJobsAreClaimedOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ws := mustWorkspace(t, db, "default")
		queue(t, db, ws, 200)
		ctx := context.Background()

		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				worker := fmt.Sprint("w", w)
				for {
					jobs, err := db.ClaimJobs(ctx, worker, 7, time.Now().Add(time.Minute))
					if err != nil {
						t.Error(err)
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						if prev, dup := seen[j.ID]; dup {
							t.Errorf("%s claimed by %s and %s", j.ID, prev, worker)
						}
						seen[j.ID] = worker
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != 200 {
			t.Fatalf("claimed %d of 200 jobs", len(seen))
		}
	})
}

func TestJobLifecycle(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ws := mustWorkspace(t, db, "default")
		ids := queue(t, db, ws, 3)
		ctx := context.Background()
		tx := db.Direct()

		// Cancelling a queued job ends it at once.
		if st, err := tx.CancelJob(ctx, ids[2]); err != nil || st != store.JobCancelled {
			t.Fatalf("cancel queued: %s, %v", st, err)
		}
		jobs, err := db.ClaimJobs(ctx, "w1", 10, time.Now().Add(-time.Second))
		if err != nil || len(jobs) != 2 {
			t.Fatalf("claim = %d, %v", len(jobs), err)
		}

		// Expired leases: requeued while attempts remain.
		re, failed, err := tx.ReapJobs(ctx, time.Now())
		if err != nil || re != 2 || failed != 0 {
			t.Fatalf("reap = %d, %d, %v", re, failed, err)
		}
		// The old worker's late finish is ignored.
		if ok, _ := tx.FinishJob(ctx, ids[0], "w1", store.JobOutcome{State: store.JobSucceeded}); ok {
			t.Fatal("a reaped job accepted its old worker's outcome")
		}
		jobs, _ = db.ClaimJobs(ctx, "w2", 10, time.Now().Add(-time.Second))
		if len(jobs) != 2 || jobs[0].Attempt != 2 {
			t.Fatalf("second claim = %+v", jobs)
		}
		// No attempts left: failed with a reason.
		if _, failed, _ := tx.ReapJobs(ctx, time.Now()); failed != 2 {
			t.Fatalf("reaped %d, want 2 failed", failed)
		}
		j, _ := tx.Job(ctx, ids[0])
		if j.State != store.JobFailed || j.Reason == "" || j.Workspace != "default" {
			t.Fatalf("lost job = %+v", j)
		}

		// A normal run, with logs.
		more := &store.Job{ID: "j_ok", WorkspaceID: ws, Kind: "tool", Spec: "{}"}
		if err := tx.InsertJob(ctx, more); err != nil {
			t.Fatal(err)
		}
		jobs, _ = db.ClaimJobs(ctx, "w3", 1, time.Now().Add(time.Minute))
		if len(jobs) != 1 {
			t.Fatal("nothing to claim")
		}
		err = tx.AppendJobLogs(ctx, []store.JobLog{{JobID: "j_ok", Seq: 1, Stream: "stdout",
			At: time.Now(), Data: []byte("hi\x00\xff")}})
		if err != nil {
			t.Fatal(err)
		}
		if ids, _ := tx.ExtendLeases(ctx, "w3", time.Now().Add(time.Minute)); len(ids) != 0 {
			t.Fatal("cancel requested out of nowhere")
		}
		if st, _ := tx.CancelJob(ctx, "j_ok"); st != store.JobRunning {
			t.Fatalf("running job state after cancel = %s", st)
		}
		if ids, _ := tx.ExtendLeases(ctx, "w3", time.Now().Add(time.Minute)); len(ids) != 1 {
			t.Fatal("the worker does not see the cancel request")
		}
		ok, err := tx.FinishJob(ctx, "j_ok", "w3", store.JobOutcome{State: store.JobCancelled,
			Result: `{"x":1}`, ExitCode: 137})
		if !ok || err != nil {
			t.Fatalf("finish = %v, %v", ok, err)
		}
		logs, _ := tx.JobLogs(ctx, "j_ok", 0, 0)
		if len(logs) != 1 || string(logs[0].Data) != "hi\x00\xff" {
			t.Fatalf("logs = %+v", logs)
		}
		if n, err := tx.DeleteJobsBefore(ctx, time.Now().Add(time.Second)); err != nil || n != 4 {
			t.Fatalf("retention deleted %d, %v", n, err)
		}
	})
}

func TestVolumeLeases(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ws := mustWorkspace(t, db, "default")
		ctx := context.Background()
		var got []bool
		for _, job := range []string{"a", "b"} {
			err := db.InTx(ctx, func(tx *store.Tx) error {
				ok, err := tx.AcquireVolume(ctx, ws, "cache", job, time.Now().Add(time.Minute))
				got = append(got, ok)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if !got[0] || got[1] {
			t.Fatalf("leases = %v, want first only", got)
		}
		db.Direct().ReleaseVolumes(ctx, "a")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			ok, err := tx.AcquireVolume(ctx, ws, "cache", "b", time.Now().Add(time.Minute))
			if !ok {
				return fmt.Errorf("released volume not acquired")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
