package oidc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyhole/keyhole/internal/store"
)

// Algorithm is the JWS algorithm of every signing key.
const Algorithm = "RS256"

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// lockName serialises key creation and rotation across servers.
const lockName = "oidc:signing_keys"

// KeyInfo describes one signing key, for listings. It holds nothing secret.
type KeyInfo struct {
	KID       string    `json:"kid"`
	Algorithm string    `json:"algorithm"`
	State     string    `json:"state"` // active or retired
	CreatedAt time.Time `json:"created_at"`
	RetiredAt time.Time `json:"retired_at,omitzero"`

	// PublishedUntil is when a retired key leaves the key set; zero for the
	// active key, which is always published.
	PublishedUntil time.Time `json:"published_until,omitzero"`
}

// newKey is a freshly generated key before it is stored.
type newKey struct {
	kid       string
	priv      *rsa.PrivateKey
	publicJWK []byte
}

// generateKey makes an RSA key whose ID is its RFC 7638 thumbprint.
func generateKey() (*newKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("oidc: generate signing key: %w", err)
	}
	return describeKey(priv)
}

func describeKey(priv *rsa.PrivateKey) (*newKey, error) {
	pub := jose.JSONWebKey{Key: &priv.PublicKey, Algorithm: Algorithm, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("oidc: key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	b, err := pub.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("oidc: encode public key: %w", err)
	}
	return &newKey{kid: pub.KeyID, priv: priv, publicJWK: b}, nil
}

// wrappedKey is what the key service wraps: the private key, bound to its
// key ID so that a wrapped key copied into another row fails to load.
type wrappedKey struct {
	KID       string `json:"kid"`
	Algorithm string `json:"alg"`
	PKCS8     []byte `json:"pkcs8"`
}

func (i *Issuer) wrap(ctx context.Context, k *newKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("oidc: encode signing key: %w", err)
	}
	plain, err := json.Marshal(wrappedKey{KID: k.kid, Algorithm: Algorithm, PKCS8: der})
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("oidc: encode signing key: %w", err)
	}
	wrapped, err := i.kek.Encrypt(ctx, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: wrap signing key with the key service: %v",
			ErrKeysUnavailable, err)
	}
	return wrapped, nil
}

// unwrapRaw opens a stored private key with the key service, or the
// previous one.
func (i *Issuer) unwrapRaw(ctx context.Context, row store.SigningKey) ([]byte, error) {
	plain, err := i.kek.Decrypt(ctx, row.Wrapped)
	if err != nil && i.opts.PreviousKEK != nil {
		var perr error
		if plain, perr = i.opts.PreviousKEK.Decrypt(ctx, row.Wrapped); perr == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: unwrap signing key %s with the key service: %v",
			ErrKeysUnavailable, row.KID, err)
	}
	return plain, nil
}

func (i *Issuer) unwrap(ctx context.Context, row store.SigningKey) (*rsa.PrivateKey, error) {
	plain, err := i.unwrapRaw(ctx, row)
	if err != nil {
		return nil, err
	}
	var w wrappedKey
	err = json.Unmarshal(plain, &w)
	clear(plain)
	if err != nil || w.KID != row.KID || w.Algorithm != row.Algorithm {
		return nil, fmt.Errorf("oidc: signing key %s: the wrapped key does not belong "+
			"to it", row.KID)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(w.PKCS8)
	clear(w.PKCS8)
	priv, ok := parsed.(*rsa.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("oidc: signing key %s: the wrapped key is not an RSA key",
			row.KID)
	}
	pub, err := parsePublic(row)
	if err != nil {
		return nil, err
	}
	if !priv.PublicKey.Equal(pub.Key) {
		return nil, fmt.Errorf("oidc: signing key %s: the stored public key does not "+
			"match the private key", row.KID)
	}
	return priv, nil
}

func parsePublic(row store.SigningKey) (jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(row.PublicJWK); err != nil || !k.IsPublic() ||
		k.KeyID != row.KID {
		return k, fmt.Errorf("oidc: signing key %s: stored public key is not a public "+
			"JWK with that key ID", row.KID)
	}
	return k, nil
}

// keyFor returns the active key with a sign horizon no earlier than exp.
func (i *Issuer) keyFor(ctx context.Context, exp time.Time) (*signingKey, error) {
	i.mu.Lock()
	defer i.mu.Unlock()

	for attempt := 0; attempt < 3; attempt++ {
		stale := i.opts.Now().Sub(i.loadedAt) >= i.opts.Refresh
		if i.active == nil || stale {
			if err := i.loadLocked(ctx); err != nil {
				return nil, err
			}
		}
		if !exp.After(i.active.horizon) {
			return i.active, nil
		}

		// Reserve the horizon before signing, and only while the key is
		// active: a key retired meanwhile stays published until the
		// horizon it had, which covers every token signed with it.
		until := exp.Add(horizonStep)
		ok, err := i.db.Direct().ExtendSigningHorizon(ctx, i.active.kid, until)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
		}
		if ok {
			i.active.horizon = until
			return i.active, nil
		}
		i.active = nil // rotated by another server: load the new key
	}
	return nil, fmt.Errorf("%w: the signing key kept changing; try again",
		ErrKeysUnavailable)
}

// loadLocked loads the active key, making the first one if there is none.
func (i *Issuer) loadLocked(ctx context.Context) error {
	row, err := i.activeRow(ctx)
	if err != nil {
		return err
	}
	if i.active == nil || i.active.kid != row.KID {
		priv, err := i.unwrap(ctx, row)
		if err != nil {
			return err
		}
		i.active, err = newSigningKey(row.KID, priv)
		if err != nil {
			return err
		}
	}
	i.active.horizon = row.SignHorizon
	i.loadedAt = i.opts.Now()
	return nil
}

func newSigningKey(kid string, priv *rsa.PrivateKey) (*signingKey, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256,
		Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, opts)
	if err != nil {
		return nil, fmt.Errorf("oidc: signing key %s: %w", kid, err)
	}
	return &signingKey{kid: kid, signer: signer}, nil
}

// activeRow returns the stored active key, making the first one when the
// table holds none.
func (i *Issuer) activeRow(ctx context.Context) (store.SigningKey, error) {
	rows, err := i.db.Direct().SigningKeys(ctx)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	if row, ok := newestActive(rows); ok {
		return row, nil
	}
	return i.createFirst(ctx)
}

func newestActive(rows []store.SigningKey) (store.SigningKey, bool) {
	for n := len(rows) - 1; n >= 0; n-- {
		if rows[n].State == store.KeyActive {
			return rows[n], true
		}
	}
	return store.SigningKey{}, false
}

// createFirst makes the first signing key. Servers starting together may
// each generate one; the lock lets only the first store it.
func (i *Issuer) createFirst(ctx context.Context) (store.SigningKey, error) {
	row, err := i.newRow(ctx)
	if err != nil {
		return row, err
	}
	err = i.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, lockName); err != nil {
			return err
		}
		rows, err := tx.SigningKeys(ctx)
		if err != nil {
			return err
		}
		if existing, ok := newestActive(rows); ok {
			row = existing
			return nil
		}
		return tx.InsertSigningKey(ctx, row)
	})
	if err != nil {
		return row, fmt.Errorf("%w: store the first signing key: %v", ErrKeysUnavailable, err)
	}
	i.log.InfoContext(ctx, "oidc: signing key in use", "kid", row.KID)
	return row, nil
}

// newRow generates and wraps a key, ready to store as the active one.
func (i *Issuer) newRow(ctx context.Context) (store.SigningKey, error) {
	k, err := generateKey()
	if err != nil {
		return store.SigningKey{}, err
	}
	wrapped, err := i.wrap(ctx, k)
	if err != nil {
		return store.SigningKey{}, err
	}
	now := i.opts.Now()
	return store.SigningKey{KID: k.kid, Algorithm: Algorithm, PublicJWK: k.publicJWK,
		Wrapped: wrapped, State: store.KeyActive, CreatedAt: now, SignHorizon: now}, nil
}

// Rotate adds a new signing key, which signs every token from now on, and
// retires the current one, which stays published until the tokens it signed
// have expired. Retired keys past that are deleted. Other servers switch to
// the new key within Options.Refresh.
func (i *Issuer) Rotate(ctx context.Context) (KeyInfo, error) {
	row, err := i.newRow(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	var deleted int
	err = i.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, lockName); err != nil {
			return err
		}
		if err := tx.RetireSigningKeys(ctx, row.CreatedAt); err != nil {
			return err
		}
		if err := tx.InsertSigningKey(ctx, row); err != nil {
			return err
		}
		deleted, err = tx.DeleteSigningKeys(ctx, row.CreatedAt.Add(-i.opts.PublishGrace))
		return err
	})
	if err != nil {
		return KeyInfo{}, fmt.Errorf("oidc: rotate signing key: %w", err)
	}

	i.mu.Lock()
	i.active = nil
	i.mu.Unlock()
	i.log.InfoContext(ctx, "oidc: rotated signing key", "kid", row.KID,
		"deleted_keys", deleted)
	return i.info(row), nil
}

// Rewrap wraps the stored private keys again under the current key
// service, opening each with the current or the previous one
// (Options.PreviousKEK). After it, the previous service is no longer
// needed. It returns how many keys it rewrapped.
func (i *Issuer) Rewrap(ctx context.Context) (int, error) {
	n := 0
	err := i.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, lockName); err != nil {
			return err
		}
		rows, err := tx.SigningKeys(ctx)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if len(row.Wrapped) == 0 { // retired: nothing left to wrap
				continue
			}
			if err := i.rewrapRow(ctx, tx, row); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("oidc: rewrap signing keys: %w", err)
	}
	return n, nil
}

func (i *Issuer) rewrapRow(ctx context.Context, tx *store.Tx, row store.SigningKey) error {
	plain, err := i.unwrapRaw(ctx, row)
	if err != nil {
		return err
	}
	wrapped, err := i.kek.Encrypt(ctx, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("%w: wrap signing key %s: %v", ErrKeysUnavailable, row.KID, err)
	}
	return tx.RewrapSigningKey(ctx, row.KID, wrapped)
}

// Keys lists the stored signing keys, oldest first.
func (i *Issuer) Keys(ctx context.Context) ([]KeyInfo, error) {
	rows, err := i.db.Direct().SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: list signing keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(rows))
	for _, r := range rows {
		out = append(out, i.info(r))
	}
	return out, nil
}

func (i *Issuer) info(r store.SigningKey) KeyInfo {
	k := KeyInfo{KID: r.KID, Algorithm: r.Algorithm, State: r.State,
		CreatedAt: r.CreatedAt, RetiredAt: r.RetiredAt}
	if r.State != store.KeyActive {
		k.PublishedUntil = r.SignHorizon.Add(i.opts.PublishGrace)
	}
	return k
}

// PublicKeys returns the key set relying parties verify tokens with: the
// active key and every retired key whose tokens may still be live. It
// reads the database each time, so a key another server just made is
// published at once. Before the first token there may be no key; the set
// is then empty, and no key is made here, so that unauthenticated requests
// for the key set cannot make keyhole generate keys.
func (i *Issuer) PublicKeys(ctx context.Context) (jose.JSONWebKeySet, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	rows, err := i.db.Direct().SigningKeys(ctx)
	if err != nil {
		return set, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	now := i.opts.Now()
	for _, r := range rows {
		if r.State != store.KeyActive && !i.info(r).PublishedUntil.After(now) {
			continue
		}
		k, err := parsePublic(r)
		if err != nil {
			return set, err
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// EnsureKey makes the first signing key if there is none yet, so that the
// key set is not empty before the first token. A server may call it at
// start; Issue does the same on first use.
func (i *Issuer) EnsureKey(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.loadLocked(ctx)
}
