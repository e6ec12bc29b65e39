package stripe

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type searchBody struct {
	Object  string           `json:"object"`
	Data    []map[string]any `json:"data"`
	HasMore bool             `json:"has_more"`
	URL     string           `json:"url"`
}

type errorBody struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func get(t *testing.T, s *Server, path string, query url.Values, key string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path+"?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func ids(t *testing.T, body []byte) []string {
	t.Helper()
	var sr searchBody
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if sr.Object != "search_result" {
		t.Errorf("object = %q, want search_result", sr.Object)
	}
	out := []string{}
	for _, d := range sr.Data {
		out = append(out, d["id"].(string))
	}
	return out
}

func TestSearch(t *testing.T) {
	t.Parallel()
	s := NewServer(nil)
	t.Cleanup(s.Close)
	tests := []struct {
		path, query string
		want        []string
	}{
		{"/v1/customers/search", "email:'billing@acme.example'", []string{"cus_Acme0001"}},
		{"/v1/customers/search", `email:"BILLING@ACME.EXAMPLE"`, []string{"cus_Acme0001"}},
		{"/v1/customers/search", `email:'o\'brien@obrien.example'`, []string{"cus_OBrien01"}},
		{"/v1/customers/search", "name:'Nobody'", []string{}},
		{"/v1/invoices/search", "customer:'cus_Initech1'", []string{"in_Initech1", "in_Initech2"}},
		{"/v1/invoices/search", "customer_email:'billing@acme.example'", []string{"in_Acme0001"}},
		{"/v1/invoices/search", "customer:'cus_Initech1' AND status:'paid'", []string{"in_Initech1"}},
		{"/v1/invoices/search", "status:'open' OR number:'ACME-0001'",
			[]string{"in_Acme0001", "in_Globex01"}},
	}
	for _, tt := range tests {
		status, body := get(t, s, tt.path, url.Values{"query": {tt.query}}, DefaultKey)
		if status != http.StatusOK {
			t.Errorf("%s %s: status %d: %s", tt.path, tt.query, status, body)
			continue
		}
		if diff := cmp.Diff(tt.want, ids(t, body)); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tt.path, tt.query, diff)
		}
	}
}

func TestSearchLimit(t *testing.T) {
	t.Parallel()
	s := NewServer(nil)
	t.Cleanup(s.Close)
	_, body := get(t, s, "/v1/invoices/search",
		url.Values{"query": {"customer:'cus_Initech1'"}, "limit": {"1"}}, DefaultKey)
	var sr searchBody
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatal(err)
	}
	if len(sr.Data) != 1 || !sr.HasMore || sr.URL != "/v1/invoices/search" {
		t.Errorf("got %+v, want one result with has_more", sr)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := NewServer(nil)
	t.Cleanup(s.Close)
	wrongKey := "sk_test_wrongwrongwrong9999"
	tests := []struct {
		name, path, query, key string
		status                 int
		message                string
	}{
		{"no key", "/v1/customers/search", "email:'x'", "", 401, "You did not provide an API key"},
		{"wrong key", "/v1/customers/search", "email:'x'", wrongKey, 401,
			"Invalid API Key provided: sk_test_***************9999"},
		{"no query", "/v1/customers/search", "", DefaultKey, 400, "Missing required param: query."},
		{"unknown field", "/v1/invoices/search", "amount:'1'", DefaultKey, 400,
			`field "amount" is not a supported search field`},
		{"unterminated", "/v1/invoices/search", "customer:'cus_1", DefaultKey, 400,
			"unterminated quoted value"},
		{"injected clause", "/v1/invoices/search", "customer:'x' OR status:'paid' AND number:'1'",
			DefaultKey, 400, "AND and OR cannot be combined"},
		{"missing customer", "/v1/customers/cus_nope", "", DefaultKey, 404,
			"No such customer: 'cus_nope'"},
		{"unknown path", "/v1/charges", "", DefaultKey, 404, "Unrecognized request URL"},
	}
	for _, tt := range tests {
		q := url.Values{}
		if tt.query != "" {
			q.Set("query", tt.query)
		}
		status, body := get(t, s, tt.path, q, tt.key)
		var eb errorBody
		if err := json.Unmarshal(body, &eb); err != nil {
			t.Fatalf("%s: decode %s: %v", tt.name, body, err)
		}
		if status != tt.status || eb.Error.Type != "invalid_request_error" ||
			!strings.Contains(eb.Error.Message, tt.message) {
			t.Errorf("%s: got %d %+v, want %d with %q", tt.name, status, eb, tt.status, tt.message)
		}
		if strings.Contains(string(body), wrongKey) {
			t.Errorf("%s: the error echoes the whole key", tt.name)
		}
	}
}

func TestGetCustomerAndRecording(t *testing.T) {
	t.Parallel()
	s := NewServer(&Options{Key: "sk_test_custom_key_123456"})
	t.Cleanup(s.Close)
	status, body := get(t, s, "/v1/customers/cus_Acme0001", nil, "sk_test_custom_key_123456")
	if status != 200 || !strings.Contains(string(body), `"name": "Acme Corp"`) {
		t.Fatalf("got %d %s", status, body)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/customers/cus_Acme0001" {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestCustomData(t *testing.T) {
	t.Parallel()
	data := Data{Customers: []Customer{customer("cus_1", "One", "one@example.com", 1)}}
	s := NewTLSServer(&Options{Data: &data})
	t.Cleanup(s.Close)
	req, _ := http.NewRequest(http.MethodGet,
		s.URL+"/v1/customers/search?query="+url.QueryEscape("name:'one'"), nil)
	req.SetBasicAuth(DefaultKey, "")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if diff := cmp.Diff([]string{"cus_1"}, ids(t, body)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
