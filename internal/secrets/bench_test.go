package secrets_test

import (
	"context"
	"testing"
)

// BenchmarkOpen measures the keyring's open of a sealed resource value (the
// decryption a read adds): key lookup, associated data and AES-256-GCM.
//
//	go test -run '^$' -bench Open -cpu 1 ./internal/secrets/
func BenchmarkOpen(b *testing.B) {
	bb := setupTB(b, "")
	r := bb.put(b, "f/bot/stripe", 1, `{"apiKey": "sk_live_51Hxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "baseURL": "https://api.example.com/v1"}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bb.ring.Open(ctx, r.WorkspaceID, r.Path, r.Version, r.KeyVersion, r.Sealed); err != nil {
			b.Fatal(err)
		}
	}
}
