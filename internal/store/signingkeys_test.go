package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyhole/keyhole/internal/store"
)

func TestSigningKeys(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tx := db.Direct()
		t0 := time.UnixMicro(1_700_000_000_000_000).UTC()
		first := store.SigningKey{KID: "k1", Algorithm: "RS256", PublicJWK: []byte(`{}`),
			Wrapped: []byte{1, 2}, State: store.KeyActive, CreatedAt: t0, SignHorizon: t0}
		if err := tx.InsertSigningKey(ctx, first); err != nil {
			t.Fatal(err)
		}

		// The horizon only moves forward, and only while the key is active.
		for _, until := range []time.Time{t0.Add(time.Hour), t0.Add(time.Minute)} {
			if ok, err := tx.ExtendSigningHorizon(ctx, "k1", until); !ok || err != nil {
				t.Fatalf("extend active key: %v, %v", ok, err)
			}
		}
		if err := tx.RetireSigningKeys(ctx, t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if ok, err := tx.ExtendSigningHorizon(ctx, "k1", t0.Add(2*time.Hour)); ok || err != nil {
			t.Fatalf("extend retired key: %v, %v; want false", ok, err)
		}
		second := first
		second.KID, second.State = "k2", store.KeyActive
		if err := tx.InsertSigningKey(ctx, second); err != nil {
			t.Fatal(err)
		}

		got, err := tx.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first.State, first.RetiredAt = store.KeyRetired, t0.Add(time.Second)
		first.Wrapped = []byte{} // erased on retirement
		first.SignHorizon = t0.Add(time.Hour)
		want := []store.SigningKey{first, second}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("signing keys (-want +got):\n%s", diff)
		}

		// Deleting spares retired keys whose tokens may live, and the
		// active key always.
		if n, err := tx.DeleteSigningKeys(ctx, t0.Add(time.Minute)); n != 0 || err != nil {
			t.Errorf("delete before the horizon: %d, %v", n, err)
		}
		if n, err := tx.DeleteSigningKeys(ctx, t0.Add(3*time.Hour)); n != 1 || err != nil {
			t.Errorf("delete after the horizon: %d, %v", n, err)
		}
	})
}
