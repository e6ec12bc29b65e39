package resource_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/audit"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/secrets"
	"github.com/keyhole/keyhole/internal/store"
	"github.com/keyhole/keyhole/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

const canary = "sk_live_CANARY_5f1e2d3c4b5a"

type bundle struct {
	db  *store.DB
	svc *resource.Service
	ws  *store.Workspace
	log *audit.Log
}

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
	log := audit.New(db, nil)
	t.Cleanup(log.Close)
	b := &bundle{db: db, svc: resource.NewService(db, ring, log, nil), log: log}
	err = db.InTx(ctx, func(tx *store.Tx) error {
		if b.ws, err = tx.CreateWorkspace(ctx, "default"); err != nil {
			return err
		}
		_, err = ring.CreateDataKey(ctx, tx, b.ws.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func eachDB(t *testing.T, f func(t *testing.T, b *bundle)) {
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); f(t, setup(t, "")) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); f(t, setup(t, testpg.DSN(t))) })
}

func (b *bundle) set(path, typ, value string) (*resource.Info, error) {
	return b.svc.Set(context.Background(), b.ws, "token:test",
		resource.SetRequest{Path: path, Type: typ, Value: json.RawMessage(value)})
}

func TestSetGetMasksSecrets(t *testing.T) {
	eachDB(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		if _, err := b.set("f/bot/openai", "openai",
			`{"apiKey": "`+canary+`", "baseURL": "http://127.0.0.1:9999/v1"}`); err != nil {
			t.Fatal(err)
		}
		got, err := b.svc.Get(ctx, b.ws, "f/bot/openai")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"apiKey": resource.Mask, "baseURL": "http://127.0.0.1:9999/v1"}
		if diff := cmp.Diff(want, got.Value); diff != "" {
			t.Errorf("masked value (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"api.openai.com", "127.0.0.1:9999"}, got.AllowedHosts); diff != "" {
			t.Errorf("allowed hosts (-want +got):\n%s", diff)
		}
		b2, _ := json.Marshal(got)
		if strings.Contains(string(b2), canary) {
			t.Fatal("masked resource shows the secret")
		}

		rev, err := b.svc.Reveal(ctx, b.ws, "token:test", "f/bot/openai")
		if err != nil || rev.Value["apiKey"] != canary || !rev.Revealed {
			t.Fatalf("reveal = %+v, %v", rev, err)
		}
		recs, _ := b.log.List(ctx, "default", audit.Filter{Action: "resource.reveal"})
		if len(recs) != 1 || recs[0].Target != "f/bot/openai" {
			t.Fatalf("reveal audit records = %+v", recs)
		}
	})
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	cases := []struct {
		name, path, typ, value string
		kind                   fault.Kind
		want                   string
	}{
		{"malformed JSON", "a", "stripe", `{"apiKey": `, fault.Invalid, "JSON object"},
		{"not an object", "a", "stripe", `"x"`, fault.Invalid, "JSON object"},
		{"schema failure", "a", "stripe", `{"apikey": "x"}`, fault.Invalid, "apiKey"},
		{"unknown type", "a", "strype", `{}`, fault.Invalid, "unknown resource type"},
		{"dotdot", "f/../x", "secret", `{"value": "v"}`, fault.Invalid, "segment"},
		{"empty segment", "f//x", "secret", `{"value": "v"}`, fault.Invalid, "empty segment"},
		{"control char", "f/x\n", "secret", `{"value": "v"}`, fault.Invalid, "control character"},
		{"leading slash", "/f", "secret", `{"value": "v"}`, fault.Invalid, "slash"},
		{"bad url field", "a", "anthropic", `{"apiKey": "k", "baseURL": "ftp://x"}`, fault.Invalid, "baseURL"},
		{"missing value", "a", "secret", ``, fault.Invalid, "missing"},
	}
	for _, tc := range cases {
		_, err := b.set(tc.path, tc.typ, tc.value)
		if err == nil || fault.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v (kind %v), want kind %v containing %q",
				tc.name, err, fault.KindOf(err), tc.kind, tc.want)
		}
	}
	list, _ := b.svc.List(context.Background(), b.ws, "")
	if len(list) != 0 {
		t.Errorf("bad input stored %d resources", len(list))
	}
}

func TestValidationNeverEchoesASecret(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	// http_header's name must match a pattern; put the secret where a
	// validator would quote it.
	_, err := b.set("h", "http_header", `{"name": "X-Key", "value": "`+canary+`", "extra": "`+canary+`"}`)
	if err == nil {
		t.Fatal("accepted an unknown field")
	}
	if strings.Contains(err.Error(), canary) {
		t.Fatalf("error echoes the secret: %v", err)
	}
}

func TestConcurrentWritersLastWins(t *testing.T) {
	eachDB(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				v := fmt.Sprintf(`{"value": "writer-%02d-%s"}`, i, strings.Repeat("x", 100))
				if _, err := b.set("f/shared", "secret", v); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got, err := b.svc.Reveal(ctx, b.ws, "t", "f/shared")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 16 {
			t.Errorf("version = %d after 16 writes", got.Version)
		}
		if v, _ := got.Value["value"].(string); !strings.HasPrefix(v, "writer-") || len(v) != 110 {
			t.Errorf("torn value %q", v)
		}
	})
}

func TestCorruptCiphertextOnlyBreaksItsResource(t *testing.T) {
	eachDB(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		for _, p := range []string{"a", "b", "c"} {
			if _, err := b.set(p, "secret", `{"value": "v-`+p+`"}`); err != nil {
				t.Fatal(err)
			}
		}
		// Copy b's ciphertext over a's: a swapped row.
		_, err := b.db.SQL().ExecContext(ctx, `UPDATE resources SET sealed =
			(SELECT sealed FROM resources WHERE path = 'b') WHERE path = 'a'`)
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.svc.Get(ctx, b.ws, "a")
		if fault.Code(err) != "decrypt_failed" || !strings.Contains(err.Error(), "resource a") {
			t.Fatalf("swapped row: err = %v", err)
		}
		for _, p := range []string{"b", "c"} {
			if got, err := b.svc.Reveal(ctx, b.ws, "t", p); err != nil || got.Value["value"] != "v-"+p {
				t.Errorf("%s: %v, %v", p, got, err)
			}
		}
		if list, err := b.svc.List(ctx, b.ws, ""); err != nil || len(list) != 3 {
			t.Errorf("list = %d, %v", len(list), err)
		}
	})
}

func TestCustomType(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	spec := `{"name": "acme", "schema": {"type": "object", "properties": {"token": {"type": "string"}},
		"required": ["token"]}, "secret_fields": ["token"], "allowed_hosts": ["api.acme.test"]}`
	if _, err := resource.DecodeType([]byte(spec)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Direct().PutObject(ctx, b.ws.ID, resource.KindType, "acme", spec); err != nil {
		t.Fatal(err)
	}
	info, err := b.set("x", "acme", `{"token": "t"}`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"api.acme.test"}, info.AllowedHosts); diff != "" {
		t.Error(diff)
	}
	for _, bad := range []string{
		`{"name": "stripe", "schema": {"type": "object"}, "secret_fields": ["x"]}`,
		`{"name": "x", "schema": {"type": "object"}, "secret_fields": ["nope"]}`,
		`{"name": "x", "schema": {"type": "object", "properties": {"a": {}}}, "secret_fields": ["a"], "allowed_hosts": ["https://x"]}`,
		`{"name": "x", "schema": {}, "secret_fields": [], "colour": 1}`,
	} {
		if _, err := resource.DecodeType([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
