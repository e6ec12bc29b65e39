package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/keyhole/keyhole/internal/store"
)

// sealFormat is the first byte of every sealed value, so that the format can
// change without guessing.
const sealFormat = 1

// ErrOpen reports that a sealed value failed authentication: it was altered,
// copied from another row, or sealed under a key this keyring does not have.
var ErrOpen = errors.New("secrets: sealed value failed authentication")

// UnwrapError reports a stored data key the key service cannot unwrap.
type UnwrapError struct {
	Workspace string
	Version   int
	Service   string // a description of the key service, safe to show
	Err       error
}

func (e *UnwrapError) Error() string {
	return fmt.Sprintf("the key service (%s) cannot unwrap data key version %d of "+
		"workspace %q: start keyhole with the --key-url that wrote it, or pass that "+
		"one as --previous-key-url and run \"keyhole key rotate --kek\" to move to "+
		"the new one (%v)", e.Service, e.Version, e.Workspace, e.Err)
}

func (e *UnwrapError) Unwrap() error { return e.Err }

// Keyring holds the unwrapped data keys of every workspace, in memory only.
// It is safe for concurrent use.
type Keyring struct {
	db       *store.DB
	kek      KeyService
	kekDesc  string
	previous KeyService // may be nil; opens data keys wrapped by an older service

	mu   sync.RWMutex
	keys map[int64]*workspaceKeys // by workspace id
}

type workspaceKeys struct {
	active int
	aeads  map[int]cipher.AEAD // by data key version
}

// KeyringOptions configures [NewKeyring].
type KeyringOptions struct {
	// Description names the key service in messages; never a secret.
	Description string
	// Previous, if set, is tried when the key service cannot unwrap a data
	// key: the service the data keys were wrapped by before a move.
	Previous KeyService
}

// NewKeyring unwraps every data key in db with kek. It fails with an
// *UnwrapError naming the first key it cannot unwrap, so that a server
// started with the wrong key refuses to start instead of failing later.
func NewKeyring(ctx context.Context, db *store.DB, kek KeyService, opts *KeyringOptions) (*Keyring, error) {
	if opts == nil {
		opts = &KeyringOptions{}
	}
	k := &Keyring{db: db, kek: kek, kekDesc: opts.Description, previous: opts.Previous,
		keys: map[int64]*workspaceKeys{}}
	if err := k.loadAll(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// loadAll unwraps every stored data key.
func (k *Keyring) loadAll(ctx context.Context) error {
	keys, err := k.db.Direct().DataKeys(ctx, 0)
	if err != nil {
		return err
	}
	names, err := k.workspaceNames(ctx)
	if err != nil {
		return err
	}

	loaded := map[int64]*workspaceKeys{}
	for _, dk := range keys {
		aead, err := k.unwrap(ctx, dk, names[dk.WorkspaceID])
		if err != nil {
			return err
		}
		wk := loaded[dk.WorkspaceID]
		if wk == nil {
			wk = &workspaceKeys{aeads: map[int]cipher.AEAD{}}
			loaded[dk.WorkspaceID] = wk
		}
		wk.aeads[dk.Version] = aead
		if dk.State == store.KeyActive && dk.Version > wk.active {
			wk.active = dk.Version
		}
	}

	k.mu.Lock()
	k.keys = loaded
	k.mu.Unlock()
	return nil
}

func (k *Keyring) workspaceNames(ctx context.Context) (map[int64]string, error) {
	all, err := k.db.Direct().Workspaces(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(all))
	for _, ws := range all {
		names[ws.ID] = ws.Name
	}
	return names, nil
}

// unwrap opens one stored data key with the key service, or the previous
// one, and returns the AEAD it keys.
func (k *Keyring) unwrap(ctx context.Context, dk store.DataKey, workspace string) (cipher.AEAD, error) {
	raw, err := k.unwrapRaw(ctx, dk, workspace)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return newAEAD(raw)
}

func (k *Keyring) unwrapRaw(ctx context.Context, dk store.DataKey, workspace string) ([]byte, error) {
	raw, err := k.kek.Decrypt(ctx, dk.Wrapped)
	if err != nil && k.previous != nil {
		var perr error
		if raw, perr = k.previous.Decrypt(ctx, dk.Wrapped); perr == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, &UnwrapError{Workspace: workspace, Version: dk.Version,
			Service: k.kekDesc, Err: err}
	}
	return raw, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("data key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// CreateDataKey makes a new data key version for a workspace inside tx, which
// becomes the active one when tx commits. The first call for a workspace
// creates version 1. The keyring learns the new key from the database once
// it is committed, never before.
func (k *Keyring) CreateDataKey(ctx context.Context, tx *store.Tx, workspaceID int64) (int, error) {
	if err := tx.Lock(ctx, keyLock(workspaceID)); err != nil {
		return 0, err
	}
	version, _, err := k.createDataKey(ctx, tx, workspaceID)
	return version, err
}

func (k *Keyring) createDataKey(ctx context.Context, tx *store.Tx, workspaceID int64) (int, cipher.AEAD, error) {
	existing, err := tx.DataKeys(ctx, workspaceID)
	if err != nil {
		return 0, nil, err
	}
	version := 1
	if n := len(existing); n > 0 {
		version = existing[n-1].Version + 1
	}

	raw := make([]byte, 32)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return 0, nil, err
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return 0, nil, err
	}
	wrapped, err := k.kek.Encrypt(ctx, raw)
	if err != nil {
		return 0, nil, fmt.Errorf("wrap new data key with %s: %w", k.kekDesc, err)
	}
	err = tx.InsertDataKey(ctx, store.DataKey{WorkspaceID: workspaceID, Version: version,
		Wrapped: wrapped, State: store.KeyActive})
	if err != nil {
		return 0, nil, err
	}
	if err := tx.RetireDataKeys(ctx, workspaceID, version); err != nil {
		return 0, nil, err
	}
	return version, aead, nil
}

// keysFor returns a workspace's keys holding version (any, if 0), loading
// versions this keyring has not seen from the database: another server may
// have created or rotated them.
//
// Inside a transaction, tx must be that transaction: a read on another
// connection could wait for a connection the transaction's peers hold.
func (k *Keyring) keysFor(ctx context.Context, tx *store.Tx, workspaceID int64, version int) (*workspaceKeys, error) {
	k.mu.RLock()
	wk := k.keys[workspaceID]
	k.mu.RUnlock()
	if wk != nil && (version == 0 || wk.aeads[version] != nil) {
		return wk, nil
	}

	wk, err := k.loadWorkspace(ctx, tx, workspaceID)
	if err != nil {
		return nil, err
	}
	if wk == nil || (version != 0 && wk.aeads[version] == nil) {
		return nil, fmt.Errorf("workspace %d has no data key version %d: %w",
			workspaceID, version, ErrOpen)
	}
	return wk, nil
}

// loadWorkspace unwraps the data keys of one workspace that are not in
// memory yet and returns the workspace's keys, or nil if it has none.
func (k *Keyring) loadWorkspace(ctx context.Context, tx *store.Tx, workspaceID int64) (*workspaceKeys, error) {
	if tx == nil {
		tx = k.db.Direct()
	}
	stored, err := tx.DataKeys(ctx, workspaceID)
	if err != nil || len(stored) == 0 {
		return nil, err
	}

	k.mu.RLock()
	old := k.keys[workspaceID]
	k.mu.RUnlock()
	wk := &workspaceKeys{aeads: map[int]cipher.AEAD{}}
	for _, dk := range stored {
		if old != nil && old.aeads[dk.Version] != nil {
			wk.aeads[dk.Version] = old.aeads[dk.Version]
		} else {
			aead, err := k.unwrap(ctx, dk, strconv.FormatInt(workspaceID, 10))
			if err != nil {
				return nil, err
			}
			wk.aeads[dk.Version] = aead
		}
		if dk.State == store.KeyActive && dk.Version > wk.active {
			wk.active = dk.Version
		}
	}

	k.mu.Lock()
	k.keys[workspaceID] = wk
	k.mu.Unlock()
	return wk, nil
}

// Refresh reloads every data key from the database.
func (k *Keyring) Refresh(ctx context.Context) error { return k.loadAll(ctx) }

// activeVersion returns the data key version that seals new values of a
// workspace, as the database has it within tx.
func (k *Keyring) activeVersion(ctx context.Context, tx *store.Tx, workspaceID int64) (int, error) {
	keys, err := tx.DataKeys(ctx, workspaceID)
	if err != nil {
		return 0, err
	}
	active := 0
	for _, dk := range keys {
		if dk.State == store.KeyActive && dk.Version > active {
			active = dk.Version
		}
	}
	if active == 0 {
		return 0, fmt.Errorf("workspace %d has no active data key", workspaceID)
	}
	return active, nil
}

// Seal encrypts plaintext for the resource at path, version, under the
// workspace's active data key as tx sees it, and returns the key version
// used and the sealed bytes.
func (k *Keyring) Seal(ctx context.Context, tx *store.Tx, workspaceID int64, path string,
	version int64, plaintext []byte) (int, []byte, error) {
	// A rotation holds this lock exclusively while it re-seals, so no value
	// lands under a key it is retiring.
	if err := tx.LockShared(ctx, keyLock(workspaceID)); err != nil {
		return 0, nil, err
	}
	keyVersion, err := k.activeVersion(ctx, tx, workspaceID)
	if err != nil {
		return 0, nil, err
	}
	wk, err := k.keysFor(ctx, tx, workspaceID, keyVersion)
	if err != nil {
		return 0, nil, err
	}
	sealed, err := sealWith(wk.aeads[keyVersion], workspaceID, keyVersion, path, version, plaintext)
	return keyVersion, sealed, err
}

func keyLock(workspaceID int64) string { return "datakeys:" + strconv.FormatInt(workspaceID, 10) }

func sealWith(aead cipher.AEAD, workspaceID int64, keyVersion int,
	path string, version int64, plaintext []byte) ([]byte, error) {

	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	ad := associatedData(workspaceID, path, version, keyVersion)
	return aead.Seal(out, out[1:1+aead.NonceSize()], plaintext, ad), nil
}

// Open decrypts a sealed resource value. It fails with ErrOpen when the value
// does not belong to exactly this workspace, path, version and key version.
func (k *Keyring) Open(ctx context.Context, workspaceID int64, path string, version int64,
	keyVersion int, sealed []byte) ([]byte, error) {
	return k.open(ctx, nil, workspaceID, path, version, keyVersion, sealed)
}

func (k *Keyring) open(ctx context.Context, tx *store.Tx, workspaceID int64, path string,
	version int64, keyVersion int, sealed []byte) ([]byte, error) {
	wk, err := k.keysFor(ctx, tx, workspaceID, keyVersion)
	if err != nil {
		return nil, err
	}
	aead := wk.aeads[keyVersion]
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealFormat {
		return nil, ErrOpen
	}
	nonce := sealed[1 : 1+aead.NonceSize()]
	ad := associatedData(workspaceID, path, version, keyVersion)
	plain, err := aead.Open(nil, nonce, sealed[1+aead.NonceSize():], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// associatedData binds a sealed value to its row: workspace, path, resource
// version and data key version, each length-prefixed so no two rows share it.
func associatedData(workspaceID int64, path string, version int64, keyVersion int) []byte {
	ad := make([]byte, 0, 64+len(path))
	ad = append(ad, "keyhole/resource/v1"...)
	for _, part := range []string{
		strconv.FormatInt(workspaceID, 10), path,
		strconv.FormatInt(version, 10), strconv.Itoa(keyVersion),
	} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(part)))
		ad = append(ad, part...)
	}
	return ad
}
