package oidc_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkIssue measures signing one job identity token with a loaded
// key: go test -run '^$' -bench Issue ./internal/oidc/
func BenchmarkIssue(b *testing.B) {
	bd := setup(b, "")
	ctx := context.Background()
	if _, err := bd.issuer.Issue(ctx, job, "vault", time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := bd.issuer.Issue(ctx, job, "vault", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
