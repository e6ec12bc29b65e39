package vaultref_test

import (
	"testing"
)

// BenchmarkCredential measures handing out a Vault-held credential, from
// the cache and with a login and read against the local fake Vault:
//
//	go test -run '^$' -bench Credential ./internal/vaultref/
func BenchmarkCredential(b *testing.B) {
	bd := setup(b, "")
	bd.putReference(b, "kv/data/bot/stripe")
	if _, err := bd.credential(b); err != nil {
		b.Fatal(err)
	}

	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := bd.credential(b); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("login_and_read", func(b *testing.B) {
		for b.Loop() {
			bd.resolver.Purge()
			if _, err := bd.credential(b); err != nil {
				b.Fatal(err)
			}
		}
	})
}
