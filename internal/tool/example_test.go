package tool

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyhole/keyhole/internal/fake/stripe"
)

// exampleDir holds the definitions of the product story: a billing toolset
// that answers "did Acme pay?".
const exampleDir = "../../examples/stripe-billing"

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStripeBillingExample applies the example's definitions as keyhole
// apply would, then calls both tools against the fake Stripe with the tool
// URLs' base pointed at it.
func TestStripeBillingExample(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stripeHosts := func(context.Context, string) ([]string, error) {
		return []string{"api.stripe.com"}, nil
	}

	s := stripe.NewServer(&stripe.Options{Key: canaryKey})
	t.Cleanup(s.Close)
	cred := &Credential{Path: "f/bot/stripe", Type: "stripe",
		Fields: map[string]any{"apiKey": canaryKey}, SecretFields: []string{"apiKey"},
		AllowedHosts: []string{strings.TrimPrefix(s.URL, "http://")}}
	src := sources{"f/bot/stripe": cred}

	tools := map[string]*Tool{}
	for _, name := range []string{"get_customer.yaml", "search_invoices.yaml"} {
		doc := readExample(t, name)
		d, err := DecodeTool(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Validate(ctx, d, stripeHosts); err != nil {
			t.Fatalf("%s does not validate against api.stripe.com: %v", name, err)
		}
		local := strings.ReplaceAll(string(doc), "https://api.stripe.com", s.URL)
		tools[d.Name] = compileAt(t, local, "")
	}

	set, err := DecodeToolset(readExample(t, "billing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateToolset(set, func(n string) bool { return tools[n] != nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRoute(readExample(t, "stripe-route.yaml")); err != nil {
		t.Fatal(err)
	}

	ex := NewExecutor(nil)
	res := ex.Call(ctx, tools["get_customer"], src, json.RawMessage(`{"email":"billing@acme.example"}`))
	wantCustomer := `{"created":1714000000,"email":"billing@acme.example","id":"cus_Acme0001","name":"Acme Corp"}`
	if res.IsError || string(res.Content) != wantCustomer {
		t.Fatalf("get_customer: %v %s", res.Err, res.Content)
	}

	res = ex.Call(ctx, tools["search_invoices"], src, json.RawMessage(`{"email":"billing@acme.example"}`))
	if res.IsError {
		t.Fatalf("search_invoices: %v %s", res.Err, res.Content)
	}
	var invoices []stripe.Invoice
	if err := json.Unmarshal(res.Content, &invoices); err != nil {
		t.Fatal(err)
	}
	got := []string{invoices[0].ID, invoices[0].Status, invoices[0].Customer}
	if diff := cmp.Diff([]string{"in_Acme0001", "paid", "cus_Acme0001"}, got); diff != "" {
		t.Errorf("Acme's invoice (-want +got):\n%s", diff)
	}
	assertClean(t, res)

	res = ex.Call(ctx, tools["get_customer"], src, json.RawMessage(`{"email":"nobody@example.com"}`))
	if res.IsError || string(res.Content) != "null" {
		t.Errorf("unknown customer: %v %s", res.Err, res.Content)
	}
	res = ex.Call(ctx, tools["search_invoices"], src, json.RawMessage(`{"email":"acme"}`))
	if !res.IsError || !strings.Contains(res.Err.Error(), `"email"`) {
		t.Errorf("bad email: %v", res.Err)
	}
}
