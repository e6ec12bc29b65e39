package trigger

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrBufferFull reports that a connection's delivery buffer held as many
// messages as it may, so a new message was refused on arrival.
var ErrBufferFull = errors.New("trigger: delivery buffer is full")

// DeliveryOptions configures a [Delivery]. The zero value is usable.
type DeliveryOptions[T any] struct {
	// Buffer is how many messages may wait for the handler. Zero means 256.
	Buffer int
	// BusyWait bounds how long one message is retried while the handler
	// reports ErrQueueFull. Zero means five seconds.
	BusyWait time.Duration
	// OnReject is called for each message that is not delivered: refused
	// because the buffer was full (ErrBufferFull), given up after BusyWait
	// (ErrQueueFull), or still buffered at shutdown (the context's error). It
	// runs on the goroutine that gave up and must not block for long.
	OnReject func(item T, err error)
	// OnError is called when the handler fails with any other error. The
	// message counts as failed and is not retried.
	OnError func(item T, err error)
}

// DeliveryStats counts what a [Delivery] did with the messages offered to it.
type DeliveryStats struct {
	Delivered uint64 // handled without error
	Rejected  uint64 // refused or given up, see DeliveryOptions.OnReject
	Failed    uint64 // the handler returned another error
	Queued    int    // waiting in the buffer now
}

// Delivery stands between a connection's reader and a handler. Offer never
// blocks, so the reader keeps answering heartbeats and pings however slow the
// handler is; Run hands the buffered messages to the handler in arrival
// order, one at a time.
//
// When the handler reports ErrQueueFull, the same message is retried with a
// growing pause until BusyWait has passed; then it is rejected. Every rejected
// message is counted and passed to OnReject: nothing is dropped silently.
type Delivery[T any] struct {
	handle func(context.Context, T) error
	opts   DeliveryOptions[T]
	queue  chan T

	delivered atomic.Uint64
	rejected  atomic.Uint64
	failed    atomic.Uint64
}

// NewDelivery returns a Delivery that passes messages to handle.
func NewDelivery[T any](handle func(context.Context, T) error,
	opts DeliveryOptions[T]) *Delivery[T] {
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	if opts.BusyWait <= 0 {
		opts.BusyWait = 5 * time.Second
	}
	return &Delivery[T]{handle: handle, opts: opts, queue: make(chan T, opts.Buffer)}
}

// Offer buffers item for the handler without blocking. When the buffer is
// full the item is rejected and Offer returns ErrBufferFull.
func (d *Delivery[T]) Offer(item T) error {
	select {
	case d.queue <- item:
		return nil
	default:
		d.reject(item, ErrBufferFull)
		return ErrBufferFull
	}
}

// Run delivers buffered messages until ctx is done. Messages still buffered
// then are rejected with the context's error.
func (d *Delivery[T]) Run(ctx context.Context) {
	for {
		select {
		case item := <-d.queue:
			d.deliver(ctx, item)
		case <-ctx.Done():
			d.drain(ctx.Err())
			return
		}
	}
}

// Stats returns the counts so far.
func (d *Delivery[T]) Stats() DeliveryStats {
	return DeliveryStats{
		Delivered: d.delivered.Load(),
		Rejected:  d.rejected.Load(),
		Failed:    d.failed.Load(),
		Queued:    len(d.queue),
	}
}

// deliver calls the handler for one item, retrying while the queue is full.
func (d *Delivery[T]) deliver(ctx context.Context, item T) {
	deadline := time.Now().Add(d.opts.BusyWait)
	pause := 25 * time.Millisecond
	for {
		err := d.handle(ctx, item)
		switch {
		case err == nil:
			d.delivered.Add(1)
			return
		case !errors.Is(err, ErrQueueFull):
			d.fail(item, err)
			return
		case ctx.Err() != nil:
			d.reject(item, ctx.Err())
			return
		case time.Now().Add(pause).After(deadline):
			d.reject(item, fmt.Errorf("gave up after %s: %w", d.opts.BusyWait, err))
			return
		}

		// The queue is full: wait a little longer each time, then retry.
		if !Sleep(ctx, pause) {
			d.reject(item, ctx.Err())
			return
		}
		pause = min(2*pause, time.Second)
	}
}

func (d *Delivery[T]) drain(cause error) {
	for {
		select {
		case item := <-d.queue:
			d.reject(item, cause)
		default:
			return
		}
	}
}

func (d *Delivery[T]) reject(item T, err error) {
	d.rejected.Add(1)
	if d.opts.OnReject != nil {
		d.opts.OnReject(item, err)
	}
}

func (d *Delivery[T]) fail(item T, err error) {
	d.failed.Add(1)
	if d.opts.OnError != nil {
		d.opts.OnError(item, err)
	}
}

// Sleep waits for d or until ctx is done, and reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
