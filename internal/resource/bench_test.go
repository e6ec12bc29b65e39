package resource_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/keyhole/keyhole/internal/testpg"
)

// benchValue is the size of a typical credential: a Stripe key and a base URL.
const benchValue = `{"apiKey": "sk_live_51Hxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	"baseURL": "https://api.example.com/v1"}`

// BenchmarkRead compares, in one run: raw AES-256-GCM open of a value of the
// same size; a row fetch alone; a full resource read (fetch, decrypt, decode)
// with the row fetched from the database; and the same read with the sealed
// row cached in memory — on SQLite and PostgreSQL.
//
//	go test -run '^$' -bench Read -benchtime 2s -cpu 1 ./internal/resource/
func BenchmarkRead(b *testing.B) {
	b.Run("aes-gcm-open", benchAESGCM)
	for _, db := range []struct{ name, dsn string }{{"sqlite", ""}, {"postgres", "pg"}} {
		b.Run("fetch/"+db.name, func(b *testing.B) { benchFetch(b, db.dsn) })
		b.Run("read-uncached/"+db.name, func(b *testing.B) { benchReadResource(b, db.dsn, false) })
		b.Run("read-cached/"+db.name, func(b *testing.B) { benchReadResource(b, db.dsn, true) })
	}
}

func benchAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	ad := []byte("keyhole/resource/v1 1 f/bot/stripe 1 1")
	sealed := aead.Seal(nil, nonce, []byte(benchValue), ad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := aead.Open(nil, nonce, sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func benchSetup(b *testing.B, dsn string) *bundle {
	b.Helper()
	if dsn == "pg" {
		dsn = testpg.DSN(b)
	}
	bb := setupTB(b, dsn)
	if _, err := bb.set("f/bot/stripe", "openai", benchValue); err != nil {
		b.Fatal(err)
	}
	return bb
}

func benchFetch(b *testing.B, dsn string) {
	bb := benchSetup(b, dsn)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bb.db.Direct().Resource(ctx, bb.ws.ID, "f/bot/stripe"); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func benchReadResource(b *testing.B, dsn string, cached bool) {
	bb := benchSetup(b, dsn)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !cached {
			bb.svc.Invalidate(bb.ws.ID)
		}
		c, err := bb.svc.Open(ctx, bb.ws.ID, "f/bot/stripe")
		if err != nil || c.Fields["apiKey"] == nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
