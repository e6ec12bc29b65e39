package vaultref

import (
	"maps"
	"sync"
	"time"

	"github.com/keyhole/keyhole/internal/oidc"
)

// cacheKey names one fetched value: where it came from and who asked.
type cacheKey struct {
	addr, namespace, mount, role, audience string
	ref                                    string
	workspace, kind, name, trigger         string
}

func keyFor(s Settings, caller oidc.JobClaims, ref string) cacheKey {
	return cacheKey{addr: s.Addr, namespace: s.Namespace, mount: s.JWTMount, role: s.Role,
		audience: s.Audience, ref: ref, workspace: caller.Workspace, kind: caller.JobKind,
		name: caller.JobName, trigger: caller.Trigger}
}

// cache holds fetched values in memory until they expire. Expiry is
// checked against the resolver's clock on every read, and a timer also
// drops each entry when its time is up, so an unused value does not linger.
type cache struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]*entry
}

type entry struct {
	fields  map[string]any
	expires time.Time
	timer   *time.Timer
}

func newCache(now func() time.Time) *cache {
	return &cache{now: now, entries: map[cacheKey]*entry{}}
}

// get returns a copy of the fields cached under k, if they have not
// expired; the copy stays whole when the entry is dropped.
func (c *cache) get(k cacheKey) (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.expires) {
		c.dropLocked(k, e)
		return nil, false
	}
	return maps.Clone(e.fields), true
}

// put caches fields under k for ttl; a ttl of zero or less caches nothing.
func (c *cache) put(k cacheKey, fields map[string]any, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k]; ok {
		c.dropLocked(k, old)
	}
	e := &entry{fields: fields, expires: c.now().Add(ttl)}
	e.timer = time.AfterFunc(ttl, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.entries[k] == e {
			c.dropLocked(k, e)
		}
	})
	c.entries[k] = e
}

// dropLocked forgets an entry and clears its map, so that nothing else
// holding the entry keeps the value.
func (c *cache) dropLocked(k cacheKey, e *entry) {
	e.timer.Stop()
	delete(c.entries, k)
	clear(e.fields)
}

// drop forgets every entry for which match is true.
func (c *cache) drop(match func(cacheKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if match(k) {
			c.dropLocked(k, e)
		}
	}
}

// len reports how many entries are cached, expired or not.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
