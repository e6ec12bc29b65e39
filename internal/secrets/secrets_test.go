package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

type bundle struct {
	db   *store.DB
	ring *secrets.Keyring
	kek  secrets.KeyService
	dir  string
	ws   int64
}

// setup opens a fresh database with one workspace and its first data key.
func setup(t *testing.T, dsn string) *bundle { return setupTB(t, dsn) }

func setupTB(t testing.TB, dsn string) *bundle {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, dsn, &store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek, _, err := secrets.OpenKeyService(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.NewKeyring(ctx, db, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{db: db, ring: ring, kek: kek, dir: dir}
	err = db.InTx(ctx, func(tx *store.Tx) error {
		ws, err := tx.CreateWorkspace(ctx, "default")
		if err != nil {
			return err
		}
		b.ws = ws.ID
		_, err = ring.CreateDataKey(ctx, tx, ws.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// put seals value for path and stores it, the way the resource service does.
func (b *bundle) put(t testing.TB, path string, version int64, value string) *store.Resource {
	t.Helper()
	ctx := context.Background()
	r := &store.Resource{WorkspaceID: b.ws, Path: path, Type: "secret", Version: version}
	err := b.db.InTx(ctx, func(tx *store.Tx) error {
		kv, sealed, err := b.ring.Seal(ctx, tx, b.ws, path, version, []byte(value))
		if err != nil {
			return err
		}
		r.KeyVersion, r.Sealed = kv, sealed
		return tx.PutResource(ctx, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *bundle) open(r *store.Resource) (string, error) {
	plain, err := b.ring.Open(context.Background(), r.WorkspaceID, r.Path, r.Version,
		r.KeyVersion, r.Sealed)
	return string(plain), err
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	r := b.put(t, "f/a", 1, "canary-1")
	if got, err := b.open(r); err != nil || got != "canary-1" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if bytes.Contains(r.Sealed, []byte("canary-1")) {
		t.Fatal("sealed bytes hold the plaintext")
	}
}

func TestSwappedCiphertextFailsToOpen(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	a := b.put(t, "f/a", 1, "value-a")
	other := b.put(t, "f/b", 1, "value-b")

	cases := map[string]*store.Resource{
		"other path":     {WorkspaceID: b.ws, Path: other.Path, Version: 1, KeyVersion: 1, Sealed: a.Sealed},
		"older version":  {WorkspaceID: b.ws, Path: a.Path, Version: 2, KeyVersion: 1, Sealed: a.Sealed},
		"other ws":       {WorkspaceID: b.ws + 1, Path: a.Path, Version: 1, KeyVersion: 1, Sealed: a.Sealed},
		"flipped bit":    {WorkspaceID: b.ws, Path: a.Path, Version: 1, KeyVersion: 1, Sealed: flip(a.Sealed)},
		"truncated":      {WorkspaceID: b.ws, Path: a.Path, Version: 1, KeyVersion: 1, Sealed: a.Sealed[:10]},
		"no key version": {WorkspaceID: b.ws, Path: a.Path, Version: 1, KeyVersion: 9, Sealed: a.Sealed},
	}
	for name, r := range cases {
		if _, err := b.open(r); !errors.Is(err, secrets.ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}

func TestWrongKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	wrong := "base64key://" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	kek, desc, err := secrets.OpenKeyService(context.Background(), wrong, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = secrets.NewKeyring(context.Background(), b.db, kek, &secrets.KeyringOptions{Description: desc})
	var uerr *secrets.UnwrapError
	if !errors.As(err, &uerr) || uerr.Workspace != "default" || uerr.Version != 1 {
		t.Fatalf("err = %v, want UnwrapError for default v1", err)
	}
	if strings.Contains(err.Error(), base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))) {
		t.Fatal("error message shows the inline key")
	}
}

func TestRotateResealsEveryValue(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		b := setup(t, dsn)
		ctx := context.Background()
		for i, p := range []string{"a", "b/c", "d"} {
			b.put(t, p, int64(i+1), "value-"+p)
		}
		v, n, err := b.ring.Rotate(ctx, b.ws)
		if err != nil || v != 2 || n != 3 {
			t.Fatalf("Rotate = %d, %d, %v; want 2, 3", v, n, err)
		}
		all, _ := b.db.Direct().Resources(ctx, b.ws, "")
		for _, r := range all {
			if r.KeyVersion != 2 {
				t.Errorf("%s still under key version %d", r.Path, r.KeyVersion)
			}
			if got, err := b.open(r); err != nil || got != "value-"+r.Path {
				t.Errorf("%s after rotate: %q, %v", r.Path, got, err)
			}
		}
		// New writes use the new key.
		if r := b.put(t, "e", 1, "x"); r.KeyVersion != 2 {
			t.Errorf("new value sealed under key version %d", r.KeyVersion)
		}

		// A second keyring, as after a restart, opens everything too.
		ring2, err := secrets.NewKeyring(ctx, b.db, b.kek, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := b.db.Direct().Resource(ctx, b.ws, "a")
		if _, err := ring2.Open(ctx, b.ws, r.Path, r.Version, r.KeyVersion, r.Sealed); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRewrapMovesToANewKeyService(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	r := b.put(t, "a", 1, "value")

	newURL := "base64key://" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	newKEK, desc, err := secrets.OpenKeyService(ctx, newURL, "")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := secrets.NewKeyring(ctx, b.db, newKEK,
		&secrets.KeyringOptions{Description: desc, Previous: b.kek})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ring.Rewrap(ctx); err != nil || n != 1 {
		t.Fatalf("Rewrap = %d, %v", n, err)
	}

	// Now the new service alone opens everything, and the old one does not.
	ring, err = secrets.NewKeyring(ctx, b.db, newKEK, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Open(ctx, b.ws, r.Path, r.Version, r.KeyVersion, r.Sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.NewKeyring(ctx, b.db, b.kek, nil); err == nil {
		t.Fatal("old key service still unwraps the data keys")
	}
}

func TestMasterKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	if _, _, err := secrets.OpenKeyService(ctx, "", dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, secrets.MasterKeyFile)
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master key mode = %v, %v; want 0600", info.Mode().Perm(), err)
	}
	before, _ := os.ReadFile(path)
	if _, _, err := secrets.OpenKeyService(ctx, "", dir); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("second open replaced the master key")
	}

	os.Chmod(path, 0o644)
	if _, _, err := secrets.OpenKeyService(ctx, "", dir); err == nil ||
		!strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: err = %v", err)
	}
}

func TestBadKeyURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"base64key://", "ftp://x", "base64key://short"} {
		if _, _, err := secrets.OpenKeyService(context.Background(), u, ""); err == nil {
			t.Errorf("%s: no error", u)
		}
	}
}

func eachDB(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); f(t, "") })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); f(t, testpg.DSN(t)) })
}
