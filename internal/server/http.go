package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyhole/keyhole/internal/auth"
	"github.com/keyhole/keyhole/internal/fault"
	"github.com/keyhole/keyhole/internal/store"
)

// maxBody bounds a JSON request body.
const maxBody = 4 << 20

// principal is the caller a token stands for.
type principal struct {
	tokenID   string
	name      string
	workspace *store.Workspace
	scopes    []string
}

// actor names the caller in audit records.
func (p *principal) actor() string { return "token:" + p.name }

// call is what a handler gets besides the request: who calls, and the
// workspace named in the URL.
type call struct {
	p  *principal
	ws *store.Workspace
}

// endpoint is one route of the API.
type endpoint struct {
	method  string
	path    string // a net/http pattern path; {ws} names the workspace
	summary string
	scope   string // scope needed; "" means any valid token, public means none
	tag     string
	query   []param // query parameters, for the OpenAPI document
	body    any     // an example of the request body type, or nil
	resp    any     // an example of the response body type, or nil
	status  int     // success status; default 200
	h       func(w http.ResponseWriter, r *http.Request, c *call) error
}

type param struct{ name, desc string }

const public = "-"

// errorBody is the shape of every API error.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// serve wraps an endpoint's handler with authentication, the workspace
// lookup, the scope check and error reporting.
func (s *Server) serve(e endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		err := s.handle(rec, r, e)
		if err != nil {
			s.writeError(rec, r, err)
		}
		s.metrics.observeRequest(e.method+" "+e.path, rec.status(), time.Since(start))
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, e endpoint) error {
	c := &call{}
	if e.scope != public {
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		c.p = p
	}
	if name := r.PathValue("ws"); name != "" && c.p != nil {
		ws, err := s.authorizeWorkspace(r.Context(), c.p, name)
		if err != nil {
			return err
		}
		c.ws = ws
	}
	if c.p != nil && e.scope != "" && !auth.Allows(c.p.scopes, e.scope) {
		return fault.New(fault.Forbidden, "missing_scope",
			"this token (%s) lacks the scope %s; create one with keyhole token create --scope %s",
			c.p.name, e.scope, e.scope)
	}
	return e.h(w, r, c)
}

// authenticate resolves the request's bearer token.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, fault.New(fault.Unauthorized, "missing_token",
			"no token: send Authorization: Bearer <token> (the CLI reads KEYHOLE_TOKEN)")
	}
	return s.principal(r.Context(), strings.TrimSpace(token))
}

func (s *Server) principal(ctx context.Context, token string) (*principal, error) {
	bad := fault.New(fault.Unauthorized, "invalid_token",
		"the token is not valid: it is unknown, revoked or expired")
	if !auth.LooksLikeToken(token) {
		return nil, bad
	}
	hash := string(auth.Hash(token))
	t, ok := s.tokens.Get(hash)
	if !ok {
		var err error
		t, err = s.db.Direct().TokenByHash(ctx, []byte(hash))
		if errors.Is(err, store.ErrNotFound) {
			return nil, bad
		}
		if err != nil {
			return nil, err
		}
		s.tokens.Put(hash, t)
	}
	switch {
	case !t.RevokedAt.IsZero():
		return nil, fault.New(fault.Unauthorized, "revoked_token", "the token %q was revoked", t.Name)
	case !t.ExpiresAt.IsZero() && time.Now().After(t.ExpiresAt):
		return nil, fault.New(fault.Unauthorized, "expired_token",
			"the token %q expired at %s", t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	ws, err := s.workspace(ctx, t.Workspace)
	if err != nil {
		return nil, err
	}
	return &principal{tokenID: t.ID, name: t.Name, workspace: ws, scopes: t.Scopes}, nil
}

// authorizeWorkspace returns the workspace called name if p may act in it:
// its own, or any workspace for an admin of the default workspace.
func (s *Server) authorizeWorkspace(ctx context.Context, p *principal, name string) (*store.Workspace, error) {
	operator := p.workspace.Name == DefaultWorkspace && auth.Allows(p.scopes, auth.Admin)
	if name != p.workspace.Name && !operator {
		return nil, fault.New(fault.Forbidden, "wrong_workspace",
			"this token belongs to workspace %q, not %q", p.workspace.Name, name)
	}
	ws, err := s.workspace(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.NotFound, "", "workspace %q does not exist", name)
	}
	return ws, err
}

// workspace returns the workspace called name, from memory when it can.
func (s *Server) workspace(ctx context.Context, name string) (*store.Workspace, error) {
	s.wsMu.RLock()
	ws := s.workspaces[name]
	s.wsMu.RUnlock()
	if ws != nil {
		return ws, nil
	}
	ws, err := s.db.Direct().Workspace(ctx, name)
	if err != nil {
		return nil, err
	}
	s.wsMu.Lock()
	s.workspaces[name] = ws
	s.wsMu.Unlock()
	return ws, nil
}

// writeError sends err as the API's JSON error shape. Errors that are not
// the caller's fault are logged in full and shown without internals.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := fault.KindOf(err)
	switch {
	case errors.Is(err, store.ErrNotFound) && kind == fault.Internal:
		kind = fault.NotFound
	case (errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict)) && kind == fault.Internal:
		kind = fault.Conflict
	}

	body := apiError{Code: fault.Code(err), Message: err.Error()}
	var fe *fault.Error
	if errors.As(err, &fe) {
		body.Details = fe.Details
	} else {
		body.Code = map[fault.Kind]string{fault.NotFound: "not_found", fault.Conflict: "conflict"}[kind]
		if kind == fault.Internal {
			body.Code = "internal"
			body.Message = "internal error; the server log has the details"
		}
	}
	if kind == fault.Internal || kind == fault.Unavailable {
		s.logger.ErrorContext(r.Context(), "server: request failed",
			"method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeJSON(w, kind.Status(), errorBody{Error: body})
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decodeJSON reads the request body into v, refusing unknown fields, a body
// over maxBody and trailing data, with messages that say what to fix.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &tooBig):
		return fault.New(fault.TooLarge, "", "request body is larger than %d bytes", maxBody)
	case errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, "malformed_json", "request body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Invalid, "malformed_json", "request body is not valid JSON: %v", err)
	case errors.As(err, &typ):
		return fault.New(fault.Invalid, "malformed_json",
			"field %s must be %s, not %s", typ.Field, typ.Type, typ.Value)
	default:
		return fault.New(fault.Invalid, "malformed_json",
			"request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return fault.New(fault.Invalid, "malformed_json", "request body has data after the JSON object")
	}
	return nil
}

// statusRecorder remembers the status a handler wrote, for metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Flush lets streaming handlers flush through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
