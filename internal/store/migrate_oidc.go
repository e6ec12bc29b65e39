package store

// The signing keys of keyhole's OIDC issuer. The private key is held only
// wrapped by the key service; the public key is kept in clear as a JWK so
// the key set can be published without unwrapping anything. sign_horizon
// bounds the expiry of every token the key has signed or may sign, so a
// retired key stays published exactly as long as a verifier may need it.
func init() {
	migrations = append(migrations, migration{2, "signing_keys", `
CREATE TABLE signing_keys (
	id {{id}},
	kid TEXT NOT NULL UNIQUE,
	algorithm TEXT NOT NULL,
	public_jwk TEXT NOT NULL,
	wrapped {{blob}} NOT NULL,
	state TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	retired_at BIGINT NOT NULL DEFAULT 0,
	sign_horizon BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX signing_keys_state ON signing_keys (state)`})
}
