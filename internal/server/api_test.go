package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhole/keyhole/internal/resource"
	"github.com/keyhole/keyhole/internal/server"
)

func TestResourceLifecycle(t *testing.T) {
	eachDB(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		setStripe(t, b.admin, "f/bot/stripe", canary)

		got, err := b.admin.Resource(ctx, "f/bot/stripe", false)
		if err != nil {
			t.Fatal(err)
		}
		if got.Value["apiKey"] != resource.Mask || got.Type != "stripe" {
			t.Errorf("masked get = %+v", got)
		}
		list, err := b.admin.Resources(ctx, "f/")
		if err != nil || len(list) != 1 {
			t.Fatalf("list = %v, %v", list, err)
		}
		rev, err := b.admin.Resource(ctx, "f/bot/stripe", true)
		if err != nil || rev.Value["apiKey"] != canary {
			t.Fatalf("reveal = %+v, %v", rev, err)
		}
		if err := b.admin.DeleteResource(ctx, "f/bot/stripe"); err != nil {
			t.Fatal(err)
		}
		_, err = b.admin.Resource(ctx, "f/bot/stripe", false)
		if e := apiError(err); e == nil || e.Status != 404 {
			t.Fatalf("after delete: %v", err)
		}

		v, err := b.admin.VerifyAudit(ctx)
		if err != nil || !v.OK || v.Records < 5 {
			t.Fatalf("audit verify = %+v, %v", v, err)
		}
	})
}

func TestBadInputGetsAJSONError(t *testing.T) {
	t.Parallel()
	b := start(t, t.TempDir(), "", "")
	ctx := context.Background()
	ro, err := b.admin.CreateToken(ctx, "ro", []string{"resources:read"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	short, err := b.admin.CreateToken(ctx, "short", []string{"admin"}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := b.admin.CreateToken(ctx, "gone", []string{"admin"}, 0)
	if _, err := b.admin.RevokeToken(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)

	const res = "/api/v1/workspaces/default/resources/f/x"
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"malformed JSON", "PUT", res, b.token, `{"type": "stripe", "value": `, 400, "malformed_json"},
		{"unknown field", "PUT", res, b.token, `{"type": "stripe", "valeu": {}}`, 400, "malformed_json"},
		{"schema failure", "PUT", res, b.token, `{"type": "stripe", "value": {"key": "x"}}`, 400, "invalid_value"},
		{"unknown type", "PUT", res, b.token, `{"type": "strype", "value": {}}`, 400, "unknown_type"},
		{"bad path", "PUT", "/api/v1/workspaces/default/resources/f/x%0a", b.token,
			`{"type": "secret", "value": {"value": "v"}}`, 400, "invalid_path"},
		{"empty segment", "GET", "/api/v1/workspaces/default/resources/f//x", b.token, "", 400, "invalid_path"},
		{"missing token", "GET", res, "", "", 401, "missing_token"},
		{"garbage token", "GET", res, "kh_nope", "", 401, "invalid_token"},
		{"expired token", "GET", res, short.Secret, "", 401, "expired_token"},
		{"revoked token", "GET", res, gone.Secret, "", 401, "revoked_token"},
		{"under-scoped write", "PUT", res, ro.Secret, `{"type": "secret", "value": {"value": "v"}}`, 403, "missing_scope"},
		{"under-scoped reveal", "GET", res + "?reveal=true", ro.Secret, "", 403, "missing_scope"},
		{"other workspace", "GET", "/api/v1/workspaces/acme/resources", ro.Secret, "", 403, "wrong_workspace"},
		{"unknown route", "GET", "/api/v1/nope", b.token, "", 404, "not_found"},
		{"missing resource", "GET", res, b.token, "", 404, "not_found"},
		{"bad token scope", "POST", "/api/v1/workspaces/default/tokens", b.token,
			`{"name": "x", "scopes": ["root"]}`, 400, "invalid_scope"},
		{"bad apply", "POST", "/api/v1/workspaces/default/apply", b.token,
			`{"files": [{"name": "a.yaml", "content": "kind: gadget\nname: x\n"}]}`, 400, "invalid_config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := b.raw(t, tc.method, tc.path, tc.token, tc.body)
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body is not JSON: %q", body)
			}
			if status != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("got %d %q %q, want %d %q", status, e.Error.Code, e.Error.Message, tc.status, tc.code)
			}
		})
	}
	list, _ := b.admin.Resources(ctx, "")
	if len(list) != 0 {
		t.Errorf("bad input left %d resources behind", len(list))
	}
}

func TestCanaryNeverLeaksWithoutReveal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := start(t, dir, "", "")
	ctx := context.Background()
	setStripe(t, b.admin, "f/bot/stripe", canary)

	// Every read a client can make without reveal.
	for _, path := range []string{
		"/api/v1/workspaces/default/resources", "/api/v1/workspaces/default/resources/f/bot/stripe",
		"/api/v1/workspaces/default/audit", "/api/v1/workspaces/default/resource-types",
		"/api/v1/workspaces/default/tokens", "/metrics", "/api/v1/openapi.json",
	} {
		_, body := b.raw(t, "GET", path, b.token, "")
		assertNoCanary(t, path, []byte(body))
	}
	if _, err := b.admin.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	b.stop()

	// Nothing in the data directory: database, WAL, key files.
	assertNoCanary(t, "server logs", b.logs.Bytes())
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			assertNoCanary(t, p, data)
		}
		return nil
	})
}

func TestRestartKeepsEverythingAndRotationReopens(t *testing.T) {
	eachDB(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		for _, p := range []string{"a", "b/c", "d/e/f"} {
			setStripe(t, b.admin, p, canary+p)
		}
		r, err := b.admin.RotateKey(ctx)
		if err != nil || r.Version != 2 || r.Resealed != 3 {
			t.Fatalf("rotate = %+v, %v", r, err)
		}
		b.stop()

		b2 := start(t, b.dir, b.dsn, "")
		for _, p := range []string{"a", "b/c", "d/e/f"} {
			got, err := b2.admin.Resource(ctx, p, true)
			if err != nil || got.Value["apiKey"] != canary+p || got.KeyVersion != 2 {
				t.Errorf("%s after restart: %+v, %v", p, got, err)
			}
		}
		if v, err := b2.admin.VerifyAudit(ctx); err != nil || !v.OK {
			t.Errorf("audit after restart: %+v, %v", v, err)
		}
	})
}

func TestWrongKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := start(t, dir, "", "")
	setStripe(t, b.admin, "a", canary)
	b.stop()

	wrong := "base64key://" + strings.Repeat("A", 43) + "="
	_, err := server.New(context.Background(), server.Config{DataDir: dir, KeyURL: wrong})
	if err == nil || !strings.Contains(err.Error(), "cannot unwrap data key") {
		t.Fatalf("start with the wrong key: err = %v", err)
	}
	if strings.Contains(err.Error(), strings.Repeat("A", 43)) {
		t.Fatal("the error shows the key")
	}
}

func TestApplyIsAllOrNothingAndIdempotent(t *testing.T) {
	t.Parallel()
	b := start(t, t.TempDir(), "", "")
	ctx := context.Background()
	setStripe(t, b.admin, "f/bot/stripe", canary)
	files := exampleFiles(t)

	res, err := b.admin.Apply(ctx, files, true)
	if err != nil || len(res.Changes) != 4 || !res.DryRun {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if objs, _ := b.admin.Config(ctx, "tools"); len(objs) != 0 {
		t.Fatal("dry run wrote tools")
	}
	if _, err := b.admin.Apply(ctx, files, false); err != nil {
		t.Fatal(err)
	}
	res, err = b.admin.Apply(ctx, files, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range res.Changes {
		if ch.Action != "unchanged" {
			t.Errorf("second apply: %+v", ch)
		}
	}

	// One bad document: nothing at all is written.
	bad := append(files, server.ApplyFile{Name: "bad.yaml", Content: "kind: tool\nname: evil\n" +
		"http:\n  url: https://evil.example/x\n  auth: {resource: f/bot/stripe, bearer: apiKey}\n"})
	bad[0].Content = strings.Replace(bad[0].Content, "billing", "billing2", 1)
	_, err = b.admin.Apply(ctx, bad, false)
	if e := apiError(err); e == nil || e.Code != "invalid_config" || !strings.Contains(e.Message, "evil") {
		t.Fatalf("bad apply: %v", err)
	}
	if _, err := b.admin.ConfigObject(ctx, "toolset", "billing2"); apiError(err) == nil {
		t.Fatal("a refused apply wrote a toolset")
	}
}

func exampleFiles(t *testing.T) []server.ApplyFile {
	t.Helper()
	dir := "../../examples/stripe-billing"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []server.ApplyFile
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") && e.Name() != "agent.yaml" {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			files = append(files, server.ApplyFile{Name: e.Name(), Content: string(b)})
		}
	}
	return files
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	b := start(t, t.TempDir(), "", "")
	status, body := b.raw(t, "GET", "/api/v1/openapi.json", "", "")
	if status != http.StatusOK {
		t.Fatal(status)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/api/v1/workspaces/{ws}/resources/{path}",
		"/api/v1/workspaces/{ws}/tokens", "/api/v1/workspaces/{ws}/audit/verify",
		"/api/v1/workspaces/{ws}/apply"} {
		if doc.Paths[want] == nil {
			t.Errorf("openapi.json lacks %s", want)
		}
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
}
