package redact

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// A Cache hands out Redactors by their secrets, building each set's
// patterns once: a credential used for many calls costs its encodings once.
// It holds digests of the secrets, not the secrets. It is safe for
// concurrent use.
type Cache struct {
	mu  sync.Mutex
	m   map[[sha256.Size]byte]*Redactor
	max int
}

// NewCache returns a Cache that holds at most max Redactors (256 when max
// is not positive); when full it starts over.
func NewCache(max int) *Cache {
	if max <= 0 {
		max = 256
	}
	return &Cache{m: map[[sha256.Size]byte]*Redactor{}, max: max}
}

// Get returns a Redactor for secrets, as New would.
func (c *Cache) Get(secrets ...string) *Redactor {
	key := digest(secrets)
	c.mu.Lock()
	r, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return r
	}

	r = New(secrets...)
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = r
	c.mu.Unlock()
	return r
}

// digest identifies a list of secrets; lengths keep ("ab","c") apart from
// ("a","bc").
func digest(secrets []string) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, s := range secrets {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
