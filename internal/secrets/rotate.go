package secrets

import (
	"context"
	"fmt"

	"github.com/keyhole/keyhole/internal/store"
)

// Rotate makes a new data key version for a workspace and re-seals every
// value of the workspace under it, in one transaction. It returns the new
// version and how many values it re-sealed. Older versions stay stored,
// retired, so that a backup taken before the rotation still opens.
func (k *Keyring) Rotate(ctx context.Context, workspaceID int64) (int, int, error) {
	var version, resealed int
	err := k.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, keyLock(workspaceID)); err != nil {
			return err
		}
		v, aead, err := k.createDataKey(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		version = v

		resources, err := tx.Resources(ctx, workspaceID, "")
		if err != nil {
			return err
		}
		for _, r := range resources {
			if r.Sealed == nil {
				continue // held elsewhere, e.g. in Vault
			}
			plain, err := k.open(ctx, tx, workspaceID, r.Path, r.Version, r.KeyVersion, r.Sealed)
			if err != nil {
				return fmt.Errorf("open resource %s for re-sealing: %w", r.Path, err)
			}
			sealed, err := sealWith(aead, workspaceID, v, r.Path, r.Version, plain)
			clear(plain)
			if err != nil {
				return err
			}
			if err := tx.ResealResource(ctx, workspaceID, r.Path, r.Version, v, sealed); err != nil {
				return err
			}
			resealed++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("rotate data key: %w", err)
	}
	if _, err := k.loadWorkspace(ctx, nil, workspaceID); err != nil {
		return 0, 0, err
	}
	return version, resealed, nil
}

// Rewrap wraps every stored data key again under the current key service,
// opening each with the current or the previous service. After it, the
// previous service is no longer needed. It returns how many keys it
// rewrapped.
func (k *Keyring) Rewrap(ctx context.Context) (int, error) {
	names, err := k.workspaceNames(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	err = k.db.InTx(ctx, func(tx *store.Tx) error {
		keys, err := tx.DataKeys(ctx, 0)
		if err != nil {
			return err
		}
		for _, dk := range keys {
			raw, err := k.unwrapRaw(ctx, dk, names[dk.WorkspaceID])
			if err != nil {
				return err
			}
			wrapped, err := k.kek.Encrypt(ctx, raw)
			clear(raw)
			if err != nil {
				return fmt.Errorf("wrap data key with %s: %w", k.kekDesc, err)
			}
			if err := tx.RewrapDataKey(ctx, dk.WorkspaceID, dk.Version, wrapped); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rewrap data keys: %w", err)
	}
	return n, nil
}
