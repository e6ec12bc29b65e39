package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

// eachDB runs the conformance test f against SQLite and PostgreSQL.
func eachDB(t *testing.T, f func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, openSQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, openPostgres(t))
	})
}

func openSQLite(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "", &store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), testpg.DSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsAreIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	for range 3 {
		db, err := store.Open(ctx, "", &store.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("schema version = %d, %v", v, err)
		}
		db.Close()
	}

	dsn := testpg.DSN(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 { // servers starting together on one database
		wg.Go(func() {
			db, err := store.Open(ctx, dsn, nil)
			if err == nil {
				db.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestWorkspaces(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tx := db.Direct()
		ws, err := tx.CreateWorkspace(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.CreateWorkspace(ctx, "default"); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate workspace: err = %v, want ErrExists", err)
		}
		got, err := tx.Workspace(ctx, "default")
		if err != nil || got.ID != ws.ID {
			t.Fatalf("Workspace = %+v, %v", got, err)
		}
		if _, err := tx.Workspace(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing workspace: err = %v", err)
		}
		if _, err := tx.CreateWorkspace(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		all, err := tx.Workspaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, w := range all {
			names = append(names, w.Name)
		}
		if diff := cmp.Diff([]string{"acme", "default"}, names); diff != "" {
			t.Errorf("workspaces (-want +got):\n%s", diff)
		}
	})
}

func TestResources(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ws := mustWorkspace(t, db, "default")
		tx := db.Direct()

		r := &store.Resource{WorkspaceID: ws, Path: "f/bot/stripe", Type: "stripe",
			Version: 1, KeyVersion: 1, Sealed: []byte{1, 2, 3}, UpdatedBy: "admin"}
		if err := tx.PutResource(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := tx.Resource(ctx, ws, "f/bot/stripe")
		if err != nil {
			t.Fatal(err)
		}
		if got.AllowedHosts != nil || string(got.Sealed) != "\x01\x02\x03" || got.Version != 1 {
			t.Errorf("got %+v", got)
		}

		r.AllowedHosts, r.Version, r.Sealed = []string{"a.example"}, 2, []byte{9}
		if err := tx.PutResource(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, _ = tx.Resource(ctx, ws, "f/bot/stripe")
		if diff := cmp.Diff([]string{"a.example"}, got.AllowedHosts); diff != "" || got.Version != 2 {
			t.Errorf("after update: version %d, hosts (-want +got):\n%s", got.Version, diff)
		}

		err = tx.ResealResource(ctx, ws, "f/bot/stripe", 1, 2, []byte{7})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("reseal of stale version: err = %v, want ErrConflict", err)
		}

		for _, p := range []string{"f/bot/discord", "g/other", "f/botany"} {
			r2 := *r
			r2.Path = p
			if err := tx.PutResource(ctx, &r2); err != nil {
				t.Fatal(err)
			}
		}
		list, err := tx.Resources(ctx, ws, "f/bot/")
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, r := range list {
			paths = append(paths, r.Path)
		}
		if diff := cmp.Diff([]string{"f/bot/discord", "f/bot/stripe"}, paths); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}

		if err := tx.DeleteResource(ctx, ws, "g/other"); err != nil {
			t.Fatal(err)
		}
		if err := tx.DeleteResource(ctx, ws, "g/other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: err = %v", err)
		}
	})
}

func TestTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ws := mustWorkspace(t, db, "default")
		tx := db.Direct()

		tok := &store.Token{ID: "tok_1", WorkspaceID: ws, Name: "ci", Hash: []byte("h1"),
			Scopes: []string{"resources:read"}, ExpiresAt: time.Now().Add(time.Hour)}
		if err := tx.InsertToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		dup := *tok
		dup.ID, dup.Hash = "tok_2", []byte("h2")
		if err := tx.InsertToken(ctx, &dup); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate live name: err = %v", err)
		}

		got, err := tx.TokenByHash(ctx, []byte("h1"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Workspace != "default" || got.Name != "ci" || got.ExpiresAt.IsZero() {
			t.Errorf("got %+v", got)
		}

		if _, err := tx.RevokeToken(ctx, ws, "ci"); err != nil {
			t.Fatal(err)
		}
		got, _ = tx.TokenByHash(ctx, []byte("h1"))
		if got.RevokedAt.IsZero() {
			t.Error("revoked token has no revocation time")
		}
		// The name is free again once the old token is revoked.
		if err := tx.InsertToken(ctx, &dup); err != nil {
			t.Fatal(err)
		}
		live, _ := tx.Tokens(ctx, ws, false)
		all, _ := tx.Tokens(ctx, ws, true)
		if len(live) != 1 || len(all) != 2 {
			t.Errorf("live %d all %d, want 1 and 2", len(live), len(all))
		}
	})
}

func TestObjects(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ws := mustWorkspace(t, db, "default")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.PutObject(ctx, ws, "tool", "a", `{"x":1}`); err != nil {
				return err
			}
			o, err := tx.PutObject(ctx, ws, "tool", "a", `{"x":2}`)
			if err != nil {
				return err
			}
			if o.Version != 2 || o.Spec != `{"x":2}` {
				return fmt.Errorf("after second put: %+v", o)
			}
			_, err = tx.PutObject(ctx, ws, "toolset", "b", `{}`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		tools, _ := db.Direct().Objects(ctx, ws, "tool")
		all, _ := db.Direct().Objects(ctx, ws, "")
		if len(tools) != 1 || len(all) != 2 {
			t.Errorf("tools %d all %d", len(tools), len(all))
		}

		// A failing transaction leaves nothing behind.
		boom := errors.New("boom")
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.PutObject(ctx, ws, "tool", "c", `{}`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := db.Direct().Object(ctx, ws, "tool", "c"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rolled-back object: err = %v", err)
		}
	})
}

func TestAuditRecords(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tx := db.Direct()
		actions := []string{"resource.set", "token.create", "resource.reveal", "resourceful"}
		for i, a := range actions {
			r := &store.AuditRecord{Workspace: "default", Seq: int64(i + 1),
				At: time.Now(), Actor: "admin", Action: a, Target: "x", Outcome: "ok",
				Detail: "{}", PrevHash: []byte{0}, Hash: []byte{byte(i)}}
			if err := tx.InsertAudit(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got, err := tx.AuditRecords(ctx, store.AuditFilter{Workspace: "default", Action: "resource"})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, r := range got {
			seqs = append(seqs, r.Seq)
		}
		if diff := cmp.Diff([]int64{1, 3}, seqs); diff != "" {
			t.Errorf("action filter (-want +got):\n%s", diff)
		}
		head, err := tx.AuditHead(ctx, "default")
		if err != nil || head.Seq != 4 {
			t.Errorf("head = %+v, %v", head, err)
		}
		if head, _ := tx.AuditHead(ctx, "other"); head != nil {
			t.Errorf("empty chain head = %+v", head)
		}
	})
}

func mustWorkspace(t *testing.T, db *store.DB, name string) int64 {
	t.Helper()
	ws, err := db.Direct().CreateWorkspace(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ws.ID
}
