package audit_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

func eachDB(t *testing.T, f func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, open(t, ""))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, open(t, testpg.DSN(t)))
	})
}

func open(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, &store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConcurrentAppendsKeepTheChain(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		log := audit.New(db, nil)
		defer log.Close()

		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				err := log.Append(ctx, audit.Record{Workspace: "default", Actor: "token:t",
					Action: "tool.call", Target: fmt.Sprint("tool-", i),
					Detail: map[string]any{"status": 200}})
				if err != nil {
					t.Error(err)
				}
			})
		}
		// Changes write their records in their own transaction, in between.
		for i := range 5 {
			err := db.InTx(ctx, func(tx *store.Tx) error {
				return log.AppendTx(ctx, tx, audit.Record{Workspace: "default",
					Actor: "token:admin", Action: "resource.set", Target: fmt.Sprint("r", i)})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()

		v, err := log.Verify(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK || v.Records != 45 {
			t.Fatalf("verify = %+v, want ok over 45 records", v)
		}
		got, _ := log.List(ctx, "default", audit.Filter{Action: "resource"})
		if len(got) != 5 {
			t.Errorf("listed %d resource records, want 5", len(got))
		}
	})
}

func TestVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper string
		at     int64
	}{
		{"edited field", "UPDATE audit_log SET target = 'other' WHERE seq = 3", 3},
		{"edited detail", `UPDATE audit_log SET detail = '{"n":99}' WHERE seq = 4`, 4},
		{"deleted record", "DELETE FROM audit_log WHERE seq = 2", 3},
		{"rehashed record", "UPDATE audit_log SET hash = prev_hash WHERE seq = 2", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachDB(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				log := audit.New(db, nil)
				defer log.Close()
				for i := range 6 {
					err := log.Append(ctx, audit.Record{Workspace: "w", Actor: "a",
						Action: "x", Target: fmt.Sprint(i), Detail: map[string]any{"n": i}})
					if err != nil {
						t.Fatal(err)
					}
				}
				if _, err := db.SQL().ExecContext(ctx, tc.tamper); err != nil {
					t.Fatal(err)
				}
				v, err := log.Verify(ctx, "w")
				if err != nil {
					t.Fatal(err)
				}
				if v.OK || v.BrokenAt != tc.at || v.Reason == "" {
					t.Fatalf("verify = %+v, want broken at %d", v, tc.at)
				}
			})
		})
	}
}
