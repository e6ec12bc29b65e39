// Package secrets seals resource values with envelope encryption.
//
// Each workspace has a 256-bit data key. The data key is stored only wrapped
// by a key service (a local master key file, HashiCorp Vault transit, or a
// cloud KMS, all through gocloud.dev/secrets) and lives unwrapped only in the
// memory of a [Keyring]. Values are sealed with AES-256-GCM under the data key,
// with associated data that binds the workspace, the resource path, the
// resource version and the data key version: a sealed value copied into
// another row, or replayed from an older version of the same row, fails to
// open.
//
// Rotation comes in two kinds. [Keyring.Rotate] makes a new data key version
// for a workspace and re-seals every value under it. [Keyring.Rewrap] wraps
// every data key again under the current key service, for moving to a new
// master key or KMS key.
package secrets
