// Package vaultref fetches the values of Vault-held resources at call time.
//
// A Vault-held resource stores only a reference in keyhole's database: the
// KV version 2 API path of a secret, such as kv/data/bot/stripe. When a call
// needs its credential, a [Resolver] logs in to Vault (or OpenBao) with the
// JWT auth method, presenting a fresh job identity token from keyhole's own
// OIDC issuer for the workspace's configured audience; reads the secret with
// the short-lived Vault token it gets back; and maps the secret's fields by
// name onto the resource type's fields. The result is a tool.Credential for
// the tool executor.
//
// # What is kept, and for how long
//
// Nothing fetched from Vault is written anywhere: not to the database, not
// to a log, not to an error. The value is cached in memory for the shortest
// of the Vault token's TTL, the secret's lease (when it has one) and the
// workspace's max_cache_ttl, and dropped when that runs out. The cache is
// keyed by the Vault settings, the reference and the caller's workspace,
// job kind, job name and trigger, so one job never reads a value fetched
// under another identity; the job ID is not part of the key, so a role that
// binds job_id is checked once per cache lifetime, not once per job.
//
// # Failing closed
//
// When Vault cannot be reached, is sealed, refuses the login or the read,
// lacks the secret, or returns a value that does not fit the resource
// type, the resolver returns an error and no credential: there is no
// fallback to a stored copy or a stale value. Errors are *[Error] values
// wrapped in a fault.Error, so errors.Is tells [ErrUnavailable] (503) from
// [ErrRefused], [ErrNotFound] and [ErrBadSecret] (502), and the API maps
// them with fault.KindOf. Messages name the Vault address, the path and
// Vault's own error text, never a token or a secret.
package vaultref
