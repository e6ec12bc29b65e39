package trigger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/trigger"
)

func TestBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	b := trigger.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt := range 20 {
		for range 50 {
			d := b.Delay(attempt)
			if d < 50*time.Millisecond || d > time.Second {
				t.Fatalf("Delay(%d) = %s, want within [50ms, 1s]", attempt, d)
			}
		}
	}
}

func TestDeliveryRetriesWhileQueueFullThenRejects(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var mu sync.Mutex
	var calls int
	var rejected []error
	d := trigger.NewDelivery(func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return trigger.ErrQueueFull
	}, trigger.DeliveryOptions[string]{
		BusyWait: 200 * time.Millisecond,
		OnReject: func(_ string, err error) {
			mu.Lock()
			defer mu.Unlock()
			rejected = append(rejected, err)
		},
	})
	go d.Run(ctx)

	if err := d.Offer("a"); err != nil {
		t.Fatalf("Offer: %v", err)
	}
	waitFor(t, func() bool { return d.Stats().Rejected == 1 })

	mu.Lock()
	defer mu.Unlock()
	if calls < 2 {
		t.Errorf("handler called %d times, want retries while the queue is full", calls)
	}
	if len(rejected) != 1 || !errors.Is(rejected[0], trigger.ErrQueueFull) {
		t.Errorf("rejections = %v, want one wrapping ErrQueueFull", rejected)
	}
}

func TestDeliveryRefusesWhenBufferFull(t *testing.T) {
	t.Parallel()
	d := trigger.NewDelivery(func(context.Context, int) error { return nil },
		trigger.DeliveryOptions[int]{Buffer: 2})

	// Run is not started, so the buffer fills.
	var errs []error
	for i := range 3 {
		errs = append(errs, d.Offer(i))
	}
	want := []error{nil, nil, trigger.ErrBufferFull}
	if diff := cmp.Diff(want, errs, cmp.Comparer(func(a, b error) bool {
		return errors.Is(a, b)
	})); diff != "" {
		t.Errorf("Offer results (-want +got):\n%s", diff)
	}
	if got := d.Stats(); got.Rejected != 1 || got.Queued != 2 {
		t.Errorf("Stats = %+v, want 1 rejected and 2 queued", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
