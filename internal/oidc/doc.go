// Package oidc makes keyhole an OpenID Connect issuer of job identity
// tokens.
//
// A job identity token is a short-lived JWT that says which workspace and
// which job a request comes from. keyhole uses one to log in to Vault or
// OpenBao with their JWT auth method when it fetches a Vault-held resource,
// and a script may ask for one to federate to a cloud provider itself.
// Anyone can check a token against the issuer's published keys; nobody but
// keyhole can make one.
//
// # Tokens
//
// [Issuer.Issue] signs the claims iss, sub, aud, exp, nbf, iat and jti, and
// the job's claims workspace, job_id, job_kind, job_name and trigger. The
// subject is "workspace:<workspace>:<kind>:<name>", so that a relying party
// can bind a role to one job by subject alone.
//
// Tokens are signed with RS256 over 2048-bit RSA keys. RS256 is the one
// algorithm every relying party must accept (OpenID Connect Core requires
// it, and Vault's OIDC roles, Microsoft Entra workload identity federation
// and several cloud STS services accept nothing else by default), so a
// token keyhole issues works wherever it is presented. Keys rotate, so the
// key size is chosen for signing speed rather than decades of life.
//
// # Keys
//
// Signing keys live in the signing_keys table. The private key is stored
// only wrapped by the key service (see package secrets); the public half is
// kept in clear so the key set is served without unwrapping anything. The
// first key is made on first use. [Issuer.Rotate] adds a new key, which
// signs from then on, and retires the old one: its wrapped private key is
// erased at once, and its public key stays published until every token it
// signed has expired (plus a grace period for verifiers' clock skew), and
// is then deleted.
//
// Several servers may share one PostgreSQL database: each key's sign
// horizon, stored with it, is extended before any server signs a token that
// would outlive it, and only while the key is still active. A retired key
// therefore stays published for as long as any server may have used it,
// even a server that has not yet noticed the rotation.
//
// # Endpoints
//
// [Issuer.Handler] serves, under the issuer URL's path, the discovery
// document at [DiscoveryPath] and the key set at [JWKSPath]
// (/.well-known/jwks.json, beside the discovery document, so that exposing
// /.well-known/ to relying parties is enough). Both are public and need no
// authentication.
package oidc
