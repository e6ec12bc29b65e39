package store

import (
	"context"
	"fmt"
	"time"
)

// SigningKey is one key of keyhole's OIDC token issuer. The private key is
// stored only wrapped by the key service.
type SigningKey struct {
	KID       string // key ID, as in the JWT header and the JWKS
	Algorithm string // JWS algorithm, e.g. RS256
	PublicJWK []byte // the public key as a JSON Web Key
	Wrapped   []byte // the private key, wrapped by the key service
	State     string // KeyActive signs new tokens; KeyRetired only verifies
	CreatedAt time.Time
	RetiredAt time.Time // zero while active

	// SignHorizon is no earlier than the expiry of any token the key has
	// signed. A server extends it before signing a token that outlives it.
	SignHorizon time.Time
}

// InsertSigningKey stores a new signing key.
func (tx *Tx) InsertSigningKey(ctx context.Context, k SigningKey) error {
	_, err := tx.q.ExecContext(ctx,
		`INSERT INTO signing_keys (kid, algorithm, public_jwk, wrapped, state, created_at,
		retired_at, sign_horizon) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.KID, k.Algorithm, string(k.PublicJWK), k.Wrapped, k.State, toMicros(k.CreatedAt),
		toMicros(k.RetiredAt), toMicros(k.SignHorizon))
	if isUniqueViolation(err) {
		return fmt.Errorf("signing key %s: %w", k.KID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert signing key: %w", err)
	}
	return nil
}

// SigningKeys lists every stored signing key in the order they were made.
func (tx *Tx) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := tx.q.QueryContext(ctx,
		`SELECT kid, algorithm, public_jwk, wrapped, state, created_at, retired_at,
		sign_horizon FROM signing_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()

	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var jwk string
		var created, retired, horizon int64
		err := rows.Scan(&k.KID, &k.Algorithm, &jwk, &k.Wrapped, &k.State, &created,
			&retired, &horizon)
		if err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		k.PublicJWK = []byte(jwk)
		k.CreatedAt, k.RetiredAt = fromMicros(created), fromMicros(retired)
		k.SignHorizon = fromMicros(horizon)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RetireSigningKeys marks every active signing key retired as of at and
// erases its wrapped private key: a retired key never signs again, and
// only its public half is needed to verify the tokens it signed.
func (tx *Tx) RetireSigningKeys(ctx context.Context, at time.Time) error {
	_, err := tx.q.ExecContext(ctx,
		"UPDATE signing_keys SET state = $1, retired_at = $2, wrapped = $3 WHERE state = $4",
		KeyRetired, toMicros(at), []byte{}, KeyActive)
	if err != nil {
		return fmt.Errorf("retire signing keys: %w", err)
	}
	return nil
}

// RewrapSigningKey replaces the wrapped private key of kid.
func (tx *Tx) RewrapSigningKey(ctx context.Context, kid string, wrapped []byte) error {
	_, err := tx.q.ExecContext(ctx,
		"UPDATE signing_keys SET wrapped = $1 WHERE kid = $2", wrapped, kid)
	if err != nil {
		return fmt.Errorf("rewrap signing key %s: %w", kid, err)
	}
	return nil
}

// ExtendSigningHorizon moves the sign horizon of the active key kid to
// until, unless it is already later. It reports false when kid is no
// longer active, in which case nothing changed and the caller must not
// sign with it.
func (tx *Tx) ExtendSigningHorizon(ctx context.Context, kid string,
	until time.Time) (bool, error) {
	res, err := tx.q.ExecContext(ctx,
		`UPDATE signing_keys SET sign_horizon = CASE WHEN sign_horizon < $1 THEN $1
		ELSE sign_horizon END WHERE kid = $2 AND state = $3`,
		toMicros(until), kid, KeyActive)
	if err != nil {
		return false, fmt.Errorf("extend signing key %s: %w", kid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("extend signing key %s: %w", kid, err)
	}
	return n == 1, nil
}

// DeleteSigningKeys deletes the retired keys whose sign horizon is at or before
// t, and reports how many it deleted.
func (tx *Tx) DeleteSigningKeys(ctx context.Context, t time.Time) (int, error) {
	res, err := tx.q.ExecContext(ctx,
		"DELETE FROM signing_keys WHERE state = $1 AND sign_horizon <= $2",
		KeyRetired, toMicros(t))
	if err != nil {
		return 0, fmt.Errorf("delete expired signing keys: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
