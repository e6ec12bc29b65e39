package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/store"
)

// TestTriggerTickAdvancesOnce: of many transactions advancing a schedule
// from the same last tick at once, as many servers do, exactly one wins.
func TestTriggerTickAdvancesOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ws := mustWorkspace(t, db, "ticks")
		prev := time.Time{}
		for round := range 5 {
			tick := time.Unix(1_800_000_000+int64(round), 0).UTC()
			var won atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					err := db.InTx(ctx, func(tx *store.Tx) error {
						ok, err := tx.AdvanceTriggerTick(ctx, ws, "every-second", prev, tick)
						if ok {
							won.Add(1)
						}
						return err
					})
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if n := won.Load(); n != 1 {
				t.Fatalf("tick %s advanced %d times, want once", tick, n)
			}
			got, err := db.Direct().TriggerLastTick(ctx, ws, "every-second")
			if err != nil || !got.Equal(tick) {
				t.Fatalf("last tick %s %v, want %s", got, err, tick)
			}
			prev = tick
		}
	})
}

// TestTriggerLeaseHasOneHolder: a live lease keeps other holders out, its
// holder renews it, and it passes to another once it lapses or is released.
func TestTriggerLeaseHasOneHolder(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ws := mustWorkspace(t, db, "leases")
		take := func(holder string, until time.Time) bool {
			t.Helper()
			ok, err := db.AcquireTriggerLease(ctx, ws, "bot", holder, until)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		soon := time.Now().Add(time.Minute)
		if !take("a", soon) || take("b", soon) || !take("a", soon) {
			t.Fatal("a live lease must keep b out and let a renew")
		}
		if !take("a", time.Now().Add(-time.Second)) || !take("b", soon) {
			t.Fatal("a lapsed lease must pass to b")
		}
		if err := db.ReleaseTriggerLease(ctx, ws, "bot", "b", "stopped"); err != nil {
			t.Fatal(err)
		}
		if !take("c", soon) {
			t.Fatal("a released lease must pass to c")
		}
		states, err := db.Direct().TriggerStates(ctx, ws)
		if err != nil || states["bot"] == nil || states["bot"].Holder != "c" {
			t.Fatalf("states: %+v %v", states, err)
		}
	})
}
