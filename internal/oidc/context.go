package oidc

import "context"

type claimsKey struct{}

// WithClaims returns a context that says whom the work done under it is for;
// whatever signs an identity token for that work reads it back with
// ClaimsFrom.
func WithClaims(ctx context.Context, c JobClaims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims WithClaims put in ctx.
func ClaimsFrom(ctx context.Context) (JobClaims, bool) {
	c, ok := ctx.Value(claimsKey{}).(JobClaims)
	return c, ok
}
