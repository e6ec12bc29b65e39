// Package stripe is a local stand-in for the parts of Stripe's API that
// keyhole's tests and examples use. It speaks Stripe's wire format: bearer
// (or basic) secret-key authentication, search endpoints with Stripe's
// search query language, search_result list objects, and error bodies of the
// form {"error": {"type": "invalid_request_error", "message": …}}.
//
// Served endpoints:
//
//	GET /v1/customers/search?query=…&limit=…   fields: email, name, metadata['k']
//	GET /v1/invoices/search?query=…&limit=…    fields: customer, customer_email,
//	                                            status, number, metadata['k']
//	GET /v1/customers/{id}
//
// Queries are clauses field:'value' (or "value", with backslash escapes)
// joined by AND or by OR; matching is exact and ignores case, as Stripe's
// is for these fields.
package stripe

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// DefaultKey is the secret key a server accepts unless Options says
// otherwise.
const DefaultKey = "sk_test_keyhole_fake_4eC39HqLyjWDarjtT1zdp7dc"

// Customer is a Stripe customer object.
type Customer struct {
	ID         string            `json:"id"`
	Object     string            `json:"object"`
	Email      string            `json:"email"`
	Name       string            `json:"name"`
	Created    int64             `json:"created"`
	Currency   string            `json:"currency,omitempty"`
	Delinquent bool              `json:"delinquent"`
	Livemode   bool              `json:"livemode"`
	Metadata   map[string]string `json:"metadata"`
}

// Invoice is a Stripe invoice object.
type Invoice struct {
	ID              string            `json:"id"`
	Object          string            `json:"object"`
	Customer        string            `json:"customer"`
	CustomerEmail   string            `json:"customer_email"`
	CustomerName    string            `json:"customer_name"`
	Number          string            `json:"number"`
	Status          string            `json:"status"`
	Currency        string            `json:"currency"`
	AmountDue       int64             `json:"amount_due"`
	AmountPaid      int64             `json:"amount_paid"`
	AmountRemaining int64             `json:"amount_remaining"`
	Created         int64             `json:"created"`
	Livemode        bool              `json:"livemode"`
	Metadata        map[string]string `json:"metadata"`
}

// Data is what a server holds.
type Data struct {
	Customers []Customer
	Invoices  []Invoice
}

// SeedData returns the customers and invoices servers start with: Acme Corp
// with a paid invoice, Globex with an open one, Initech with a paid and a
// void one, and O'Brien Ltd, whose email holds a quote.
func SeedData() Data {
	customers := []Customer{
		customer("cus_Acme0001", "Acme Corp", "billing@acme.example", 1714000000),
		customer("cus_Globex01", "Globex", "accounts@globex.example", 1714100000),
		customer("cus_Initech1", "Initech", "ap@initech.example", 1714200000),
		customer("cus_OBrien01", "O'Brien Ltd", "o'brien@obrien.example", 1714300000),
	}
	invoices := []Invoice{
		invoice(customers[0], "in_Acme0001", "ACME-0001", "paid", 120000, 1717000000),
		invoice(customers[1], "in_Globex01", "GLOBEX-0001", "open", 50000, 1717100000),
		invoice(customers[2], "in_Initech1", "INITECH-0001", "paid", 9900, 1717200000),
		invoice(customers[2], "in_Initech2", "INITECH-0002", "void", 9900, 1717300000),
		invoice(customers[3], "in_OBrien01", "OBRIEN-0001", "paid", 4200, 1717400000),
	}
	return Data{Customers: customers, Invoices: invoices}
}

func customer(id, name, email string, created int64) Customer {
	return Customer{ID: id, Object: "customer", Name: name, Email: email, Created: created,
		Currency: "usd", Metadata: map[string]string{}}
}

func invoice(c Customer, id, number, status string, amount, created int64) Invoice {
	inv := Invoice{ID: id, Object: "invoice", Customer: c.ID, CustomerEmail: c.Email,
		CustomerName: c.Name, Number: number, Status: status, Currency: "usd",
		AmountDue: amount, Created: created, Metadata: map[string]string{}}
	switch status {
	case "paid":
		inv.AmountPaid = amount
	case "open":
		inv.AmountRemaining = amount
	}
	return inv
}

// Options configures a Handler. The zero value serves SeedData with
// DefaultKey.
type Options struct {
	Key  string // the secret key requests must carry; DefaultKey when empty
	Data *Data  // what to serve; SeedData() when nil
}

// Request is what a Handler recorded of one request it received.
type Request struct {
	Method   string
	Path     string // as sent, still escaped
	RawQuery string
	Header   http.Header
}

// Handler serves the fake API. It is safe for concurrent use.
type Handler struct {
	key  string
	data Data

	mu       sync.Mutex
	requests []Request
	seq      int
}

// NewHandler returns a Handler.
func NewHandler(opts *Options) *Handler {
	h := &Handler{key: DefaultKey, data: SeedData()}
	if opts != nil && opts.Key != "" {
		h.key = opts.Key
	}
	if opts != nil && opts.Data != nil {
		h.data = *opts.Data
	}
	return h
}

// Key returns the secret key the handler accepts.
func (h *Handler) Key() string { return h.key }

// Requests returns the requests received so far, oldest first.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.requests...)
}

// Server is a Handler listening on a loopback port.
type Server struct {
	*httptest.Server
	*Handler
}

// NewServer starts a plain HTTP server on 127.0.0.1 serving a Handler.
// Close it when done.
func NewServer(opts *Options) *Server {
	h := NewHandler(opts)
	return &Server{Server: httptest.NewServer(h), Handler: h}
}

// NewTLSServer is NewServer over TLS; Server.Client and Server.Certificate
// give what a client needs to trust it.
func NewTLSServer(opts *Options) *Server {
	h := NewHandler(opts)
	return &Server{Server: httptest.NewTLSServer(h), Handler: h}
}

// ServeHTTP answers one request as Stripe would.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seq++
	h.requests = append(h.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(),
		RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
	w.Header().Set("Request-Id", fmt.Sprintf("req_fake%06d", h.seq))
	h.mu.Unlock()

	if msg, ok := h.authorize(r); !ok {
		writeError(w, http.StatusUnauthorized, stripeError{Type: "invalid_request_error",
			Message: msg})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/customers/search":
		h.search(w, r, "customers")
	case r.Method == http.MethodGet && r.URL.Path == "/v1/invoices/search":
		h.search(w, r, "invoices")
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/customers/"):
		h.getCustomer(w, strings.TrimPrefix(r.URL.Path, "/v1/customers/"))
	default:
		writeError(w, http.StatusNotFound, stripeError{Type: "invalid_request_error",
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method,
				r.URL.EscapedPath())})
	}
}

// authorize checks the secret key, sent as a bearer token or as the basic
// auth username, and returns Stripe's message when it is wrong.
func (h *Handler) authorize(r *http.Request) (string, bool) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		key, _, ok = r.BasicAuth()
	}
	if !ok || key == "" {
		return "You did not provide an API key. You need to provide your API key in " +
			"the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer " +
			"YOUR_SECRET_KEY').", false
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(h.key)) != 1 {
		return "Invalid API Key provided: " + maskKey(key), false
	}
	return "", true
}

// maskKey shows a key as Stripe's messages do: its kind prefix (such as
// "sk_test_") and last four characters.
func maskKey(key string) string {
	if len(key) <= 12 {
		return strings.Repeat("*", len(key))
	}
	prefix := ""
	if parts := strings.SplitN(key, "_", 3); len(parts) == 3 {
		prefix = parts[0] + "_" + parts[1] + "_"
	}
	return prefix + strings.Repeat("*", len(key)-len(prefix)-4) + key[len(key)-4:]
}

func (h *Handler) search(w http.ResponseWriter, r *http.Request, resource string) {
	q := r.URL.Query()
	if q.Get("query") == "" {
		writeError(w, http.StatusBadRequest, stripeError{Type: "invalid_request_error",
			Message: "Missing required param: query.", Param: "query"})
		return
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, stripeError{Type: "invalid_request_error",
			Message: err.Error(), Param: "limit"})
		return
	}
	query, err := parseQuery(q.Get("query"), searchFields[resource])
	if err != nil {
		writeError(w, http.StatusBadRequest, stripeError{Type: "invalid_request_error",
			Message: err.Error(), Param: "query"})
		return
	}

	var found []any
	if resource == "customers" {
		found = matching(h.data.Customers, query, customerField)
	} else {
		found = matching(h.data.Invoices, query, invoiceField)
	}
	writeJSON(w, http.StatusOK, searchResult(r, found, limit))
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return 10, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100 {
		return 0, fmt.Errorf("Invalid integer: %s; limit must be between 1 and 100.", s)
	}
	return n, nil
}

func matching[T any](items []T, q *query, field func(T, string) string) []any {
	found := []any{}
	for _, it := range items {
		if q.matches(func(name string) string { return field(it, name) }) {
			found = append(found, it)
		}
	}
	return found
}

func searchResult(r *http.Request, found []any, limit int) map[string]any {
	more := len(found) > limit
	if more {
		found = found[:limit]
	}
	return map[string]any{
		"object":    "search_result",
		"data":      found,
		"has_more":  more,
		"next_page": nil,
		"url":       r.URL.Path,
	}
}

func (h *Handler) getCustomer(w http.ResponseWriter, id string) {
	for _, c := range h.data.Customers {
		if c.ID == id {
			writeJSON(w, http.StatusOK, c)
			return
		}
	}
	writeError(w, http.StatusNotFound, stripeError{Type: "invalid_request_error",
		Code: "resource_missing", Param: "id",
		Message: fmt.Sprintf("No such customer: '%s'", id)})
}

// stripeError is the body of every Stripe error response, under "error".
type stripeError struct {
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Param   string `json:"param,omitempty"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, e stripeError) {
	writeJSON(w, status, map[string]stripeError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
