package ttlcache_test

import (
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/ttlcache"
)

func TestExpiryAndEviction(t *testing.T) {
	t.Parallel()
	c := ttlcache.New[string, int](20*time.Millisecond, 4)
	c.Put("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get = %v, %v", v, ok)
	}
	time.Sleep(30 * time.Millisecond)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry outlived its TTL")
	}
	for i, k := range []string{"a", "b", "c", "d", "e", "f"} {
		c.Put(k, i)
	}
	if v, ok := c.Get("f"); !ok || v != 5 {
		t.Fatal("newest entry missing after eviction")
	}
	c.DeleteFunc(func(k string) bool { return k == "f" })
	if _, ok := c.Get("f"); ok {
		t.Fatal("DeleteFunc kept the entry")
	}
}
