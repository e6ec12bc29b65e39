// Package ttlcache is a small concurrent map whose entries expire after a
// fixed time. keyhole uses it to serve hot reads (tokens, configuration,
// sealed resource rows) without a database round trip, for at most a second
// or so; a server invalidates its own entries when it writes, so only other
// servers' writes wait out the TTL.
package ttlcache

import (
	"sync"
	"time"
)

// Cache maps keys to values for a limited time.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[K]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache whose entries live for ttl, holding at most max
// entries (the oldest half is dropped when it is full).
func New[K comparable, V any](ttl time.Duration, max int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, max: max, m: make(map[K]entry[V])}
}

// Get returns the live value for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || time.Now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v for k.
func (c *Cache[K, V]) Put(k K, v V) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = entry[V]{v: v, expires: now.Add(c.ttl)}
}

// evictLocked drops expired entries, and if that is not enough, about half
// of the rest.
func (c *Cache[K, V]) evictLocked(now time.Time) {
	for k, e := range c.m {
		if now.After(e.expires) {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) < c.max/2 {
			break
		}
		delete(c.m, k)
	}
}

// Delete removes k.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// DeleteFunc removes every entry whose key f selects.
func (c *Cache[K, V]) DeleteFunc(f func(K) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if f(k) {
			delete(c.m, k)
		}
	}
}
